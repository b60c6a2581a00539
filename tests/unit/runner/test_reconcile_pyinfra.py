"""The runner's pyinfra reconcile frontend: it limits the adjust to the hosts the reconciler names (the changed
hosts and the load balancers), as the ansible-runner frontend does. The adjusts below run the real
`python -m depmirror.frontends.pyinfra` process on the example graph; they stop at the limit, before SSH."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from depmirror.runner.config import RunnerConfig
from depmirror.runner.reconcile_frontends import AdjustRequest, PyinfraFrontend, build_frontend

EXAMPLE = Path(__file__).resolve().parents[3] / "inventories" / "example" / "graph.yml"


def pyinfra_config(write_config: Callable[..., RunnerConfig], tmp_path: Path) -> RunnerConfig:
    fleet = tmp_path / "fleet.depmirror.yml"
    fleet.write_text(f"plugin: depmirror.mirroring.graph\ngraph: {EXAMPLE}\nstate_store: {tmp_path / 'fleet.db'}\n")
    reconcile = {"enabled": True, "frontend": "pyinfra", "fleet_file": str(fleet), "min_gap_seconds": 60}
    return write_config(mode="act", graph=str(EXAMPLE), dependencies=None, reconcile=reconcile)


def test_the_pyinfra_frontend_is_limited_and_passes_the_hosts_as_one_argument(
    write_config: Callable[..., RunnerConfig], tmp_path: Path
) -> None:
    frontend = build_frontend(pyinfra_config(write_config, tmp_path))
    assert isinstance(frontend, PyinfraFrontend) and frontend.whole_plan is False
    argv = frontend.argv(("lb1", "vm-b1", "vm-b2"))
    assert argv[argv.index("adjust") - 2 : argv.index("adjust")] == ["-m", "depmirror.frontends.pyinfra"]
    assert argv[-1] == "--limit=lb1,vm-b1,vm-b2"
    assert not any(a.startswith("--limit") for a in frontend.argv()), "no limit asked: the whole fleet"


def run(frontend: Any, request: AdjustRequest) -> Any:
    return asyncio.run(frontend.adjust(request))


def test_hosts_the_graph_no_longer_has_are_left_out_of_the_limit(
    write_config: Callable[..., RunnerConfig], tmp_path: Path
) -> None:
    """A VM taken out of the graph can still be in the applied plan's diff; no inventory has it."""
    frontend = build_frontend(pyinfra_config(write_config, tmp_path))
    assert isinstance(frontend, PyinfraFrontend)
    assert frontend.in_graph(("lb1", "vm-gone", "vm-b1")) == ("lb1", "vm-b1")
    assert frontend.in_graph(()) == ()


def test_a_limit_of_only_unknown_hosts_fails_the_adjust_with_the_frontend_s_own_message(
    write_config: Callable[..., RunnerConfig], tmp_path: Path
) -> None:
    """Nothing left to limit to: passed as asked, and the frontend's error is the adjust's (no SSH is tried)."""
    frontend = build_frontend(pyinfra_config(write_config, tmp_path))
    result = run(frontend, AdjustRequest("r1", ("vm-gone",)))
    assert result.outcome == "failed" and result.details["rc"] == 2
    assert "--limit: names 'vm-gone', not a host or group of the fleet" in result.detail
    assert "Traceback" not in result.detail


def test_a_limit_that_looks_like_an_option_stays_a_limit(
    write_config: Callable[..., RunnerConfig], tmp_path: Path
) -> None:
    """`--limit=VALUE` is one argument: a name starting with dashes is never read as the frontend's own option
    (here --dry-run, which would report success and change nothing)."""
    frontend = build_frontend(pyinfra_config(write_config, tmp_path))
    result = run(frontend, AdjustRequest("r2", ("--dry-run",)))
    assert result.outcome == "failed" and "--limit: names '--dry-run'" in result.detail
