"""The `depmirror.mirroring.monitoring_config` filter: a thin door over depmirror.health.rules."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from ansible.errors import AnsibleFilterError

from depmirror.health.queries import BLACKBOX_JOB

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


def probe_job(result: dict[str, list[dict[str, object]]]) -> dict[str, object]:
    return next(job for job in result["scrape_configs"] if job["job_name"] == BLACKBOX_JOB)


def test_without_a_runner_url_the_probe_job_reads_the_targets_file(plugin: ModuleType) -> None:
    job = probe_job(plugin.monitoring_config(EXAMPLE, [], "/srv/t.json"))
    assert job["file_sd_configs"][0]["files"] == ["/srv/t.json"]
    assert "http_sd_configs" not in job


def test_with_a_runner_url_the_probe_job_discovers_from_the_runner(plugin: ModuleType) -> None:
    instances = [{"dependency": "ledger", "host": "vm-a1", "role": "primary"}]
    result = plugin.monitoring_config(
        EXAMPLE,
        instances,
        "/srv/t.json",
        runner_targets_url="https://runner.example:9095/api/v1/targets",
        runner_targets_token_file="/etc/prometheus/read.token",
        runner_targets_ca_file="/etc/prometheus/ca.pem",
    )
    job = probe_job(result)
    assert "file_sd_configs" not in job
    (discovery,) = job["http_sd_configs"]
    assert discovery["url"] == "https://runner.example:9095/api/v1/targets"
    assert discovery["authorization"] == {"type": "Bearer", "credentials_file": "/etc/prometheus/read.token"}
    assert discovery["tls_config"] == {"ca_file": "/etc/prometheus/ca.pem"}
    # The targets are still returned: the role writes the file in both modes.
    assert [t["labels"]["instance"] for t in result["targets"]] == ["ledger@vm-a1"]


@pytest.mark.parametrize(
    ("runner", "message"),
    [
        ({"runner_targets_token_file": "/t"}, "runner_targets_token_file given without runner_targets_url"),
        (
            {"runner_targets_ca_file": "/ca.pem", "runner_targets_allow_http": True},
            "runner_targets_ca_file, runner_targets_allow_http given without runner_targets_url",
        ),
        ({"runner_targets_url": "http://10.1.2.3:9095/api/v1/targets"}, "clear text"),
        ({"runner_targets_url": "https://r.example/\n- job_name: evil"}, "control characters"),
        ({"runner_targets_url": ["https://r.example/"]}, "runner_targets_url must be a string"),
        ({"runner_targets_url": "http://127.0.0.1/", "runner_targets_allow_http": "yes"}, "must be true or false"),
    ],
)
def test_wrong_runner_options_raise_a_filter_error(plugin: ModuleType, runner: dict[str, object], message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=f"^monitoring_config: .*{message}"):
        plugin.monitoring_config(EXAMPLE, [], "/srv/t.json", **runner)
