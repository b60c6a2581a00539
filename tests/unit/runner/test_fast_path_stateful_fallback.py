"""When the fast path cannot even decide (Prometheus unreachable), the runner falls back to rollback.yml, but
only for what rollback.yml can move: a `stateful:` engine would be routed to a replica never promoted, so
it stays an `error` and nothing runs; a postgresql dependency goes to the playbook, which moves it."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from pathlib import Path
from typing import Any

from tests.fakes.webhook import RecordingAction
from tests.local_nginx import LocalLoadBalancer, loopback_fleet, options_for
from tests.unit.rollback.test_batch_command import _with_stateful

from depmirror.errors import DepmirrorError
from depmirror.rollback.switchover import FastPath, FastPathConfig
from depmirror.runner.actions import ActionRequest
from depmirror.runner.fast_action import FastPathAction

ROOT = Path(__file__).resolve().parents[3]


def _unreachable(names: Collection[str]) -> dict[str, Any]:
    raise DepmirrorError("cannot query Prometheus at http://127.0.0.1:1: connection refused")


def _run_one(tmp_path: Path, fleet: Any) -> tuple[Any, RecordingAction]:
    item = fleet.plan[0]
    config = FastPathConfig(graph=fleet.graph_path, collection=ROOT, nginx=options_for(tmp_path / "lb"))
    fast = FastPath(config, transport=LocalLoadBalancer(tmp_path / "lb"), health=_unreachable)
    playbook = RecordingAction(target="vm-b0")
    action = FastPathAction(fast, playbook)
    request = ActionRequest(
        action_id="a1",
        kind="rollback",
        dependency=item["name"],
        instance=f"{item['name']}@{item['primary']['host']}",
        trigger={"type": "test"},
        store_url=fleet.store_url,
    )

    async def started(_: str) -> None:
        return None

    try:
        (result,) = asyncio.run(action.run_batch([(request, started)]))
    finally:
        action.close()
    return result, playbook


def test_a_stateful_engine_is_not_handed_to_a_playbook_that_cannot_move_its_state(tmp_path: Path) -> None:
    fleet = _with_stateful(loopback_fleet(tmp_path / "fleet", 1, vms_per_zone=1, kind="tcp"))
    result, playbook = _run_one(tmp_path, fleet)
    assert playbook.requests == [], "rollback.yml would route the engine to a replica it never promoted"
    assert result.outcome == "error" and "connection refused" in result.detail
    assert result.details["path"] == "fast"


def test_a_postgresql_dependency_falls_back_to_the_playbook_which_moves_its_state(tmp_path: Path) -> None:
    fleet = loopback_fleet(tmp_path / "fleet", 1, vms_per_zone=1, kind="postgresql")
    result, playbook = _run_one(tmp_path, fleet)
    assert [r.dependency for r in playbook.requests] == [fleet.plan[0]["name"]]
    assert result.details["path"] == "playbook" and "connection refused" in result.details["fast_path_unavailable"]
