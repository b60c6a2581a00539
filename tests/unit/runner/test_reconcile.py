"""Reconciliation in the runner (issue 21): a real SQLite store holding an applied plan of the example graph,
the real planner and differ, and a frontend that records what it is asked (the lab test drives pyinfra for
real; the failing adjust below runs ansible-runner for real)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from tests.fakes.awx import FakeAwx
from tests.fakes.webhook import RecordingAction, StaticHealth, alert, notification

from depmirror.errors import ConfigError
from depmirror.fleet.applied import record_applied_plan
from depmirror.fleet.plan_diff import plan_diff
from depmirror.graph.load import load_graph
from depmirror.planner.plan import compute_plan
from depmirror.runner.actions import ActionResult
from depmirror.runner.config import AwxConfig, RunnerConfig
from depmirror.runner.reconcile import LEASE, PassResult, Reconciler
from depmirror.runner.reconcile_frontends import AdjustRequest, AnsibleFrontend, AwxFrontend
from depmirror.runner.store_caller import StoreCaller
from depmirror.store import Event, EventFilter, Override, open_store

EXAMPLE = Path(__file__).resolve().parents[3] / "inventories" / "example" / "graph.yml"


class RecordingFrontend:
    """Stands in for pyinfra/ansible/AWX: records each adjust it is asked for and answers `outcome`."""

    name = "recording"

    def __init__(self, *, whole_plan: bool = False, outcome: str = "succeeded", gate: asyncio.Event | None = None):
        self.whole_plan = whole_plan
        self.outcome = outcome
        self.gate = gate
        self.calls: list[AdjustRequest] = []
        self.started = asyncio.Event()

    async def adjust(self, request: AdjustRequest) -> ActionResult:
        self.calls.append(request)
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        return ActionResult(outcome=self.outcome, detail=f"adjust {self.outcome}")  # type: ignore[arg-type]

    async def problems(self) -> list[str]:
        return []

    def cancel(self) -> None:
        pass


@pytest.fixture
def fleet_config(write_config: Callable[..., RunnerConfig], tmp_path: Path) -> Callable[..., RunnerConfig]:
    """A runner config over the example graph whose store holds the graph's plan as applied an hour ago."""
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir(exist_ok=True)
    (playbooks / "rollback.yml").write_text("- hosts: localhost\n  gather_facts: false\n  tasks: []\n")
    (playbooks / "adjust.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.fail:\n        msg: 'the adjust failed on {{ inventory_hostname }}'\n"
    )
    # The example graph's hosts, all local: the limit then selects hosts that exist.
    hosts = [*load_graph(EXAMPLE).vms, *load_graph(EXAMPLE).load_balancers]
    (tmp_path / "hosts.ini").write_text("".join(f"{h} ansible_connection=local\n" for h in hosts))

    def make(mode: str = "act", **reconcile: Any) -> RunnerConfig:
        settings = {"enabled": True, "frontend": "ansible", "inventory": "hosts.ini", "min_gap_seconds": 60}
        config = write_config(mode=mode, graph=str(EXAMPLE), dependencies=None, reconcile={**settings, **reconcile})
        record_applied_plan(config.store, compute_plan(load_graph(EXAMPLE), now=time.time() - 3600).to_dict())
        return config

    return make


def _override(dependency: str, **settings: Any) -> Override:
    now = datetime.now(UTC) - timedelta(seconds=1)
    values = {"rf_min": None, "rf_max": None, "unhealthy": None, "rollback": None, **settings}
    return Override(
        dependency=dependency,
        reason="test",
        created_by="alice",
        created_ts=now,
        expires_ts=now + timedelta(hours=1),
        **values,
    )


def _set(config: RunnerConfig, *overrides: Override) -> None:
    with open_store(config.store) as store:
        for override in overrides:
            store.set_override(override)


def _reconciles(config: RunnerConfig) -> list[Event]:
    with open_store(config.store) as store:
        return list(reversed(store.events(EventFilter(kinds=("reconcile",)))))


def _reconciler(config: RunnerConfig, frontend: Any, runner_id: str | None = None) -> Reconciler:
    if runner_id is not None:
        config = dataclasses.replace(config, runner_id=runner_id)
    return Reconciler(config, StoreCaller(open_store(config.store)), frontend)


def _close(*reconcilers: Reconciler) -> None:
    for reconciler in reconcilers:
        reconciler.db.shutdown()
        reconciler.db.store.close()


def _reconcile_once(config: RunnerConfig, frontend: Any, why: str = "test") -> PassResult:
    """One pass of a fresh reconciler, closed afterwards."""
    reconciler = _reconciler(config, frontend)
    try:
        return asyncio.run(reconciler.reconcile(why))
    finally:
        _close(reconciler)


# --- what differs --------------------------------------------------------------------------------------
def test_an_applied_plan_is_no_difference_and_a_higher_rf_wanted_is_one(fleet_config: Any) -> None:
    config = fleet_config()
    assert plan_diff(EXAMPLE, store=config.store).changes == ()
    _set(config, _override("reports-api", rf_min=2))
    diff = plan_diff(EXAMPLE, store=config.store)
    assert [c.dependency for c in diff.changes] == ["reports-api"]
    change = diff.changes[0]
    assert (change.before or {})["replication_factor"] == 1 and (change.after or {})["replication_factor"] == 2
    provisioned = [a["host"] for a in change.actions if a["action"] == "provision"]
    assert len(provisioned) == 1 and change.hosts == tuple(provisioned)


def test_after_a_failover_the_instance_routing_dropped_is_put_back_to_the_planned_rf(fleet_config: Any) -> None:
    """What the runner's switchover leaves: a new primary and the failed one out of the routing."""
    config = fleet_config()
    with open_store(config.store) as store:
        record = store.applied_plan() or {}
        item = next(d for d in record["plan"]["dependencies"] if d["name"] == "catalog-api")
        failed = item["primary"]["host"]
        survivor = next(i["host"] for i in item["instances"] if i["host"] != failed)
        item["instances"] = [i for i in item["instances"] if i["host"] != failed]
        store.set_applied_plan(record)
        store.set_primary("catalog-api", survivor)
    diff = plan_diff(EXAMPLE, store=config.store)
    assert [c.dependency for c in diff.changes] == ["catalog-api"]
    assert failed in diff.changes[0].hosts


# --- acting --------------------------------------------------------------------------------------------
def test_a_difference_launches_one_adjust_limited_to_the_changed_hosts_and_the_lbs_and_is_recorded(
    fleet_config: Any,
) -> None:
    config = fleet_config()
    _set(config, _override("reports-api", rf_min=2))
    frontend = RecordingFrontend()
    result = _reconcile_once(config, frontend)
    assert result.outcome == "launched"
    assert len(frontend.calls) == 1
    diff_hosts = set(plan_diff(EXAMPLE, store=config.store).hosts())
    assert set(frontend.calls[0].limit) == diff_hosts | {"lb1"}
    [event] = _reconciles(config)
    assert event.dependency == "reports-api" and event.outcome == "succeeded"
    assert event.details["launched"] is True and event.details["diff"]["after"]["replication_factor"] == 2
    assert event.decision.startswith("adjust: replication factor 1 -> 2; provision ")
    assert event.trigger == {"type": "reconcile", "why": "test", "runner_id": config.runner_id}


def test_nothing_to_do_launches_nothing_and_records_nothing(fleet_config: Any) -> None:
    config = fleet_config()
    frontend = RecordingFrontend()
    reconciler = _reconciler(config, frontend)
    try:
        assert asyncio.run(reconciler.reconcile("test")).outcome == "nothing"
    finally:
        _close(reconciler)
    assert frontend.calls == [] and _reconciles(config) == []


def test_shadow_mode_records_what_it_would_do_once_and_launches_nothing(fleet_config: Any) -> None:
    config = fleet_config(mode="shadow")
    _set(config, _override("reports-api", rf_min=2))
    frontend = RecordingFrontend()
    reconciler = _reconciler(config, frontend)

    async def twice() -> list[str]:
        return [(await reconciler.reconcile("test")).outcome for _ in range(2)]

    try:
        assert asyncio.run(twice()) == ["shadow", "shadow"]
    finally:
        _close(reconciler)
    assert frontend.calls == []
    [event] = _reconciles(config)  # the same diff twice: one record
    assert event.outcome == "shadow" and event.details["launched"] is False
    assert event.details["diff"]["after"]["replication_factor"] == 2


def test_a_frozen_dependency_is_left_alone_and_what_shares_its_hosts_waits(fleet_config: Any) -> None:
    config = fleet_config()
    _set(
        config,
        _override("reports-api", rf_min=2, rollback="frozen"),
        _override("audit-log", rf_min=2),
    )
    diff = plan_diff(EXAMPLE, store=config.store)
    frozen_hosts = set(next(c for c in diff.changes if c.dependency == "reports-api").hosts)
    frontend = RecordingFrontend()
    reconciler = _reconciler(config, frontend)
    try:
        asyncio.run(reconciler.reconcile("test"))
    finally:
        _close(reconciler)
    events = {e.dependency: e for e in _reconciles(config)}
    assert events["reports-api"].outcome == "held" and "rollback frozen" in events["reports-api"].reason
    assert not frozen_hosts & {h for call in frontend.calls for h in call.limit}, "a frozen change would apply"
    audit_hosts = set(next(c for c in diff.changes if c.dependency == "audit-log").hosts)
    if audit_hosts & frozen_hosts:
        assert frontend.calls == [] and events["audit-log"].outcome == "held"
    else:
        assert len(frontend.calls) == 1 and events["audit-log"].outcome == "succeeded"


def test_with_a_whole_plan_frontend_a_frozen_change_holds_every_change(fleet_config: Any) -> None:
    config = fleet_config()
    _set(config, _override("reports-api", rf_min=2, rollback="frozen"), _override("audit-log", rf_min=2))
    frontend = RecordingFrontend(whole_plan=True)
    reconciler = _reconciler(config, frontend)
    try:
        assert asyncio.run(reconciler.reconcile("test")).outcome == "held"
    finally:
        _close(reconciler)
    assert frontend.calls == []
    events = {e.dependency: e for e in _reconciles(config)}
    assert events["audit-log"].outcome == "held" and "would change reports-api too" in events["audit-log"].reason


def test_the_rate_limit_allows_one_launch_per_gap_and_says_when_the_next_may_go(fleet_config: Any) -> None:
    config = fleet_config(min_gap_seconds=60)
    _set(config, _override("reports-api", rf_min=2))
    frontend = RecordingFrontend(outcome="failed")  # the plan stays different: a second launch would follow

    async def twice() -> list[Any]:
        return [await reconciler.reconcile("test"), await reconciler.reconcile("again")]

    reconciler = _reconciler(config, frontend)
    try:
        first, second = asyncio.run(twice())
    finally:
        _close(reconciler)
    assert first.outcome == "launched" and second.outcome == "skipped"
    assert second.retry_in_s is not None and 55 < second.retry_in_s <= 60
    assert len(frontend.calls) == 1


def test_one_adjust_at_a_time_across_runners_sharing_the_store(fleet_config: Any) -> None:
    config = fleet_config(min_gap_seconds=0)
    _set(config, _override("reports-api", rf_min=2))
    gate = asyncio.Event()
    first_frontend, second_frontend = RecordingFrontend(gate=gate), RecordingFrontend()
    first = _reconciler(config, first_frontend, runner_id="runner-1")
    second = _reconciler(config, second_frontend, runner_id="runner-2")

    async def race() -> tuple[Any, Any]:
        running = asyncio.create_task(first.reconcile("test"))
        await asyncio.wait_for(first_frontend.started.wait(), 10)
        during = await second.reconcile("test")
        gate.set()
        return await running, during

    try:
        done, during = asyncio.run(race())
    finally:
        _close(first, second)
    assert done.outcome == "launched"
    assert during.outcome == "skipped" and during.reason == "another runner reconciles"
    assert second_frontend.calls == []


def test_no_adjust_while_a_switchover_of_a_dependency_runs(fleet_config: Any) -> None:
    config = fleet_config()
    _set(config, _override("reports-api", rf_min=2))
    with open_store(config.store) as store:
        # The worker's hold on the dependency while it switches it over (runner/worker.py dispatch).
        assert store.acquire_lease("reports-api", config.runner_id, 30.0) is not None
    frontend = RecordingFrontend()
    result = _reconcile_once(config, frontend)
    assert result.outcome == "skipped" and result.reason == "a switchover of reports-api runs"
    assert result.retry_in_s is not None and result.retry_in_s < 5
    assert frontend.calls == [] and _reconciles(config) == []
    with open_store(config.store) as store:  # the leases it took meanwhile are given back
        assert store.acquire_lease(LEASE, "someone", 1.0) is not None
        assert store.acquire_lease("catalog-api", "someone", 1.0) is not None


def test_a_failing_adjust_is_recorded_and_the_next_waits_for_the_rate_limit(fleet_config: Any) -> None:
    """ansible-runner for real, on a playbook that fails: recorded as failed, nothing raised."""
    config = fleet_config(min_gap_seconds=60)
    _set(config, _override("reports-api", rf_min=2))
    reconciler = _reconciler(config, AnsibleFrontend(config))

    async def twice() -> list[Any]:
        return [await reconciler.reconcile("test"), await reconciler.reconcile("again")]

    try:
        first, second = asyncio.run(twice())
    finally:
        _close(reconciler)
    assert first.outcome == "launched" and second.outcome == "skipped"
    [event] = _reconciles(config)
    assert event.outcome == "failed" and "adjust.yml failed (rc 2)" in event.reason
    assert event.details["rc"] == 2 and event.duration_s is not None
    ran_on = Path(event.details["artifacts"], "stdout").read_text()
    assert all(f"the adjust failed on {host}" in ran_on for host in event.details["limit"])
    assert "the adjust failed on vm-a1" not in ran_on or "vm-a1" in event.details["limit"]


def test_prometheus_that_cannot_be_read_stops_every_launch(fleet_config: Any) -> None:
    config = fleet_config(prometheus_url="http://127.0.0.1:9")
    _set(config, _override("reports-api", rf_min=2))
    frontend = RecordingFrontend()
    result = _reconcile_once(config, frontend)
    assert result.outcome == "skipped" and "health unknown" in result.reason
    assert frontend.calls == []


def test_a_broken_applied_plan_in_the_store_is_a_skipped_pass_not_a_crash(fleet_config: Any) -> None:
    config = fleet_config()
    with open_store(config.store) as store:
        store.set_applied_plan({"plan": {"dependencies": []}, "state": {"instances": "{{ lookup('pipe','id') }}"}})
    frontend = RecordingFrontend()
    result = _reconcile_once(config, frontend)
    assert result.outcome == "skipped" and result.reason.startswith("cannot plan:")
    assert frontend.calls == []


@pytest.mark.parametrize(
    "record",
    [
        {"plan": {"dependencies": [{"name": "catalog-api"}]}, "state": {}},
        {"plan": {"dependencies": [{"name": "catalog-api", "replication_factor": 3, "mode": "x", "instances": 7}]}},
        {"plan": {"dependencies": "{{ lookup('pipe', 'id') }}"}, "state": {}},
    ],
)
def test_an_applied_plan_record_adjust_never_wrote_skips_the_pass_with_one_line(
    fleet_config: Any, record: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    config = fleet_config()
    with open_store(config.store) as store:
        store.set_applied_plan(record)
    frontend = RecordingFrontend()
    result = _reconcile_once(config, frontend)
    assert result.outcome == "skipped" and result.reason.startswith("cannot plan:"), result
    assert frontend.calls == [] and _reconciles(config) == []
    assert not any(r.exc_info for r in caplog.records), "a traceback for bad data"


# --- the loop and its triggers ---------------------------------------------------------------------
def test_a_switchover_the_store_records_brings_a_pass_within_a_second(fleet_config: Any) -> None:
    config = fleet_config(interval_seconds=3600)
    frontend = RecordingFrontend()
    reconciler = _reconciler(config, frontend)

    async def scenario() -> float:
        stop = asyncio.Event()
        loop = asyncio.create_task(reconciler.run(stop))
        await asyncio.sleep(0.5)  # the start pass: nothing to do
        _set(config, _override("reports-api", rf_min=2))  # another door changed the plan...
        with open_store(config.store) as store:  # ...and a switchover is recorded
            store.append_event(Event(kind="rollback", dependency="catalog-api", outcome="succeeded"))
        began = time.monotonic()
        await asyncio.wait_for(frontend.started.wait(), 5)
        waited = time.monotonic() - began
        stop.set()
        await asyncio.wait_for(loop, 10)
        return waited

    try:
        waited = asyncio.run(scenario())
    finally:
        _close(reconciler)
    assert waited < 2.0
    [event] = _reconciles(config)
    assert event.trigger["why"] == "rollback of catalog-api"


# --- the config ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reconcile", "field"),
    [
        ({"enabled": True, "frontend": "salt"}, "reconcile.frontend"),
        ({"enabled": True, "frontend": "pyinfra"}, "reconcile.fleet_file"),
        ({"enabled": True, "frontend": "ansible", "interval_seconds": 0}, "reconcile.interval_seconds"),
        ({"enabled": True, "frontend": "ansible", "min_gap_seconds": "{{ 1 }}"}, "reconcile.min_gap_seconds"),
        ({"enabled": True, "frontend": "awx"}, "reconcile.frontend"),
        ({"enabled": "yes"}, "reconcile.enabled"),
        ({"enabled": True, "frontend": "ansible", "limit": "all"}, "reconcile.limit"),
    ],
)
def test_a_bad_reconcile_setting_is_one_error_naming_its_field(
    fleet_config: Any, reconcile: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        fleet_config(**{"inventory": "hosts.ini", **reconcile})
    assert field in str(raised.value)


def test_reconciliation_is_off_unless_enabled(write_config: Callable[..., RunnerConfig]) -> None:
    config = write_config()
    assert config.reconcile.enabled is False


def test_the_ansible_frontend_passes_the_limit_and_the_adjust_playbook(fleet_config: Any) -> None:
    config = fleet_config()
    frontend = AnsibleFrontend(config)
    assert frontend.config.playbook.name == "adjust.yml" and not frontend.whole_plan
    assert asyncio.run(frontend.problems()) == []


def test_the_worker_asks_for_a_pass_after_each_switchover_it_records(harness: Any) -> None:
    """The worker's one call (runner/worker.py, `after_action`): the reconciler is poked with the dependency."""
    h = harness(RecordingAction(), StaticHealth(candidates={"payments-b": "healthy"}), mode="act")
    poked: list[str] = []
    h.worker.after_action = poked.append

    asyncio.run(h.deliver(notification(alert())))
    with open_store(h.config.store) as store:
        assert [e.outcome for e in store.events(EventFilter(kinds=("rollback",)))] == ["succeeded"]
    assert poked == ["payments"]


def test_the_awx_frontend_launches_the_adjust_template_with_the_limit(fleet_config: Any) -> None:
    """Against the fake AWX (tests/fakes/awx.py): the adjust template, its limit prompt, the job followed."""
    fake = FakeAwx(token="awx-token", templates={11: "successful", 12: "failed"}, steps=2)
    bodies: list[dict[str, Any]] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "POST" and request.path.endswith("/launch/"):
            bodies.append({"path": request.path, **(await request.json())})
        return await handler(request)

    async def launch() -> list[ActionResult]:
        app = fake.app()
        app.middlewares.append(record)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            base = fleet_config()
            awx = AwxConfig(url=str(server.make_url("")).rstrip("/"), token="awx-token", job_template_id=7)
            results = []
            for template in (11, 12):
                config = dataclasses.replace(
                    base,
                    action=dataclasses.replace(base.action, kind="awx", awx=awx),
                    reconcile=dataclasses.replace(base.reconcile, frontend="awx", awx_job_template_id=template),
                )
                frontend = AwxFrontend(config)
                frontend.awx.config = dataclasses.replace(awx, poll_interval_s=0.01)
                results.append(await frontend.adjust(AdjustRequest("r1", ("lb1", "vm-b2"))))
            return results
        finally:
            await server.close()

    succeeded, failed = asyncio.run(launch())
    assert succeeded.outcome == "succeeded" and succeeded.external_id == "101"
    assert failed.outcome == "failed"
    assert bodies[0] == {"path": "/api/v2/job_templates/11/launch/", "limit": "lb1,vm-b2"}
