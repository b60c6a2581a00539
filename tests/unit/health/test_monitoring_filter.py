"""The `depmirror.mirroring.monitoring_config` filter: a thin door over depmirror.health.rules."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = str(ROOT / "inventories" / "example" / "graph.yml")


@pytest.fixture(scope="module")
def plugin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("monitoring_config", ROOT / "plugins/filter/monitoring_config.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    with pytest.MonkeyPatch.context() as patch:
        # The filter imports the collection's plugin_utils: `make setup` links the checkout there as a collection.
        patch.syspath_prepend(str(ROOT / ".ansible" / "collections"))
        spec.loader.exec_module(module)
    return module


def test_the_filter_is_registered_under_its_name(plugin: ModuleType) -> None:
    assert set(plugin.FilterModule().filters()) == {"monitoring_config"}


def test_the_filter_returns_rules_targets_and_scrape_jobs(plugin: ModuleType) -> None:
    instances = [{"dependency": "ledger", "host": "vm-a1", "role": "primary"}]
    result = plugin.monitoring_config(EXAMPLE, instances, "/srv/t.json", interval="2s")
    assert set(result) == {"rules", "targets", "scrape_configs"}
    assert result["targets"][0]["labels"]["instance"] == "ledger@vm-a1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((42, [], "/t.json"), "graph must be a non-empty string"),
        ((EXAMPLE, "vm-a1", "/t.json"), "instances must be a list or a plan"),
        ((EXAMPLE, [{"dependency": "nope", "host": "vm-a1", "role": "primary"}], "/t.json"), "unknown dependency"),
        ((EXAMPLE, [], "/t.json", "soon"), "not a duration"),
        (("/no/such/graph.yml", [], "/t.json"), "cannot read the graph file"),
    ],
)
def test_wrong_input_raises_a_filter_error(plugin: ModuleType, args: tuple[object, ...], message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        plugin.monitoring_config(*args)
