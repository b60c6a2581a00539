"""Failbacks pending at the same moment go as ONE batch (issue 16): the worker hands them to the action in one
call, the playbook action runs failback.yml once with the list, and one refused dependency never holds back
the others. Also the worker's dispatch window (`policy.dispatch_window_seconds` / `_max_seconds`)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.webhook import RecordingAction, alert, notification

from depmirror.errors import ConfigError
from depmirror.health.view import HealthView
from depmirror.runner.actions import ActionRequest, ActionResult, BatchItems
from depmirror.runner.ansible_action import AnsibleRunnerAction
from depmirror.runner.config import ActionConfig
from depmirror.store import Event, EventFilter, QueuedAlert, open_store


@dataclass
class BatchingAction(RecordingAction):
    """The playbook action as the worker sees it: several failbacks in one run. `refuse` names dependencies
    the run leaves out (as failback.yml does with one that is not healthy), each with its own failed result."""

    refuse: set[str] = field(default_factory=set)
    batches: list[list[str]] = field(default_factory=list)

    async def run_failback_batch(self, items: BatchItems) -> list[ActionResult]:
        self.batches.append([request.dependency for request, _ in items])
        results = []
        for request, started in items:
            self.requests.append(request)
            await started("pid:1")
            if request.dependency in self.refuse:
                results.append(ActionResult(outcome="failed", detail="left out: not healthy", details={"batch": "b1"}))
            else:
                results.append(ActionResult(outcome="succeeded", target=request.instance, details={"batch": "b1"}))
        return results


class PerDependencyHealth:
    """Every alerting instance unhealthy while firing, healthy once resolved; other hosts healthy targets."""

    def __init__(self) -> None:
        self.failed = "unhealthy"

    async def check(self, dependency: str, failed_instance: str) -> HealthView:
        others = {"payments": "payments-b", "cache": "cache-b"}
        return HealthView(
            failed_instance=self.failed,  # type: ignore[arg-type]
            candidates={others[dependency]: "healthy"},
            source="test",
        )


def _both_rolled_back(harness: Any, action: BatchingAction, health: PerDependencyHealth) -> Any:
    h = harness(
        action,
        health,
        mode="act",
        policy={"failback": True, "failback_hold_seconds": 0, "cooldown_seconds": 0},
    )
    asyncio.run(h.deliver(notification(alert(), alert("cache", "cache-a", fingerprint="c"))))
    assert sorted(r.dependency for r in action.requests if r.kind == "rollback") == ["cache", "payments"]
    return h


def _resolved() -> dict[str, Any]:
    return notification(
        alert(status="resolved"), alert("cache", "cache-a", fingerprint="c", status="resolved"), status="resolved"
    )


def test_failbacks_resolved_together_go_as_one_batch_with_one_runner_event_each(harness: Any) -> None:
    action, health = BatchingAction(), PerDependencyHealth()
    h = _both_rolled_back(harness, action, health)
    health.failed = "healthy"

    asyncio.run(h.deliver(_resolved()))

    assert [sorted(batch) for batch in action.batches] == [["cache", "payments"]]
    events = h.store.events(EventFilter(kinds=("failback",), limit=None))
    assert sorted((e.dependency, e.outcome) for e in events) == [("cache", "succeeded"), ("payments", "succeeded")]
    assert {e.details["batch"] for e in events} == {"b1"}
    # Each keeps its own journal entry and trigger (its own resolved alert).
    assert len({e.details["action_id"] for e in events}) == 2
    assert h.store.primary("payments") == "payments-a" and h.store.primary("cache") == "cache-a"


def test_one_refused_failback_never_holds_back_the_other(harness: Any) -> None:
    action, health = BatchingAction(refuse={"cache"}), PerDependencyHealth()
    h = _both_rolled_back(harness, action, health)
    health.failed = "healthy"

    asyncio.run(h.deliver(_resolved()))

    outcomes = {e.dependency: e.outcome for e in h.store.events(EventFilter(kinds=("failback",), limit=None))}
    assert outcomes == {"payments": "succeeded", "cache": "failed"}
    assert h.store.primary("payments") == "payments-a"
    assert h.store.primary("cache") != "cache-a"


def test_a_failback_the_runner_refuses_leaves_the_batch_to_the_others(harness: Any) -> None:
    action, health = BatchingAction(), PerDependencyHealth()
    h = _both_rolled_back(harness, action, health)
    health.failed = "healthy"
    # cache fires again while its resolved alert waits: its failback is suppressed before any batch.
    again = notification(alert("cache", "cache-a", fingerprint="c2"))

    asyncio.run(h.deliver(again, _resolved()))

    assert action.batches == [["payments"]]
    assert h.store.primary("payments") == "payments-a"


def test_a_rollback_in_the_same_pass_does_not_wait_for_the_failback_batch(harness: Any) -> None:
    action, health = BatchingAction(), PerDependencyHealth()
    h = harness(
        action,
        health,
        mode="act",
        policy={"failback": True, "failback_hold_seconds": 0, "cooldown_seconds": 0},
    )
    asyncio.run(h.deliver(notification(alert())))
    health.failed = "healthy"
    # In one pass: payments fails back, cache rolls back (its health view says the alerting one is healthy,
    # so it is refused: either way it leaves the failback batch and the pass ends).
    asyncio.run(h.deliver(notification(alert(status="resolved"), alert("cache", "cache-a", fingerprint="c"))))

    assert action.batches == [["payments"]]
    kinds = {(e.dependency, e.kind) for e in h.store.events(EventFilter(limit=None))}
    assert ("payments", "failback") in kinds and ("cache", "refused") in kinds


# --- the playbook action: one failback.yml run for the batch --------------------------------------------

# A stand-in for failback.yml with its batch contract: it reads depmirror_dependencies, records a refused
# event for one of them in the store (as rollback_target does) and publishes the others' targets.
FAKE_FAILBACK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Keep what the runner passed
      ansible.builtin.copy:
        dest: "{{ playbook_dir }}/seen.json"
        content: "{{ {'dependencies': depmirror_dependencies, 'batch': depmirror_batch_id,
                      'trigger': depmirror_trigger} | to_json }}"
    - name: Publish the targets, every item but the refused one
      ansible.builtin.set_stats:
        data:
          depmirror_batch_id: "{{ depmirror_batch_id }}"
          depmirror_targets: >-
            {{ dict(depmirror_dependencies | rejectattr('dependency', 'eq', 'cache')
                    | map(attribute='dependency')
                    | zip(depmirror_dependencies | rejectattr('dependency', 'eq', 'cache')
                          | map(attribute='instance'))) }}
"""


def _request(dependency: str, instance: str, store_url: str) -> ActionRequest:
    return ActionRequest(
        action_id=f"id-{dependency}",
        kind="failback",
        dependency=dependency,
        instance=instance,
        trigger={"type": "alert", "runner_id": "r1", "alertname": "{{ lookup('pipe', 'id') }}"},
        store_url=store_url,
    )


def test_the_playbook_action_runs_failback_yml_once_for_the_whole_batch(tmp_path: Path) -> None:
    playbook = tmp_path / "failback.yml"
    playbook.write_text(FAKE_FAILBACK)
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    action = AnsibleRunnerAction(
        ActionConfig(playbook=playbook, failback_playbook=playbook, work_dir=tmp_path / "work"), failback=True
    )
    handles: list[str] = []

    async def started(handle: str) -> None:
        handles.append(handle)

    async def run() -> list[ActionResult]:
        items = [
            (_request("payments", "payments@vm-a1", store_url), started),
            (_request("cache", "vm-a2", store_url), started),
        ]
        # The playbook recorded why it left cache out, under the batch's id (read back for its result).
        seen_batch: list[str] = []

        async def record_refusal() -> None:
            while not (tmp_path / "seen.json").exists():
                await asyncio.sleep(0.05)
            batch = json.loads((tmp_path / "seen.json").read_text())["batch"]
            seen_batch.append(batch)
            with open_store(store_url) as store:
                store.append_event(
                    Event(
                        kind="refused",
                        dependency="cache",
                        outcome="refused",
                        time=_now(),
                        reason="vm-a2 is degraded, not healthy",
                        details={"action_id": batch},
                    )
                )

        recorder = asyncio.create_task(record_refusal())
        results = await action.run_failback_batch(items)
        await recorder
        return results

    with open_store(store_url):
        pass  # the schema, as the runner's store would have it
    began = time.monotonic()
    results = asyncio.run(run())
    assert time.monotonic() - began < 60
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["dependencies"] == [
        {"dependency": "payments", "instance": "vm-a1"},
        {"dependency": "cache", "instance": "vm-a2"},
    ]
    assert seen["trigger"]["action_ids"] == {"payments": "id-payments", "cache": "id-cache"}
    payments, cache = results
    assert (payments.outcome, payments.target) == ("succeeded", "vm-a1")
    assert payments.details["batch"] == seen["batch"] and payments.details["batch_size"] == 2
    assert cache.outcome == "failed" and "vm-a2 is degraded" in cache.detail
    assert len(handles) == 2 and handles[0] == handles[1] and handles[0].startswith("pid:")
    # One run: one private data dir for the batch.
    assert [p.name for p in (tmp_path / "work").iterdir()] == [f"failback-batch-{seen['batch']}"]


def test_a_batch_whose_playbook_is_missing_is_an_error_for_every_item(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    action = AnsibleRunnerAction(ActionConfig(playbook=missing, failback_playbook=missing, work_dir=tmp_path))

    async def started(handle: str) -> None:
        raise AssertionError("nothing starts")

    items = [(_request(name, f"{name}@vm-a1", "sqlite:///x.db"), started) for name in ("a", "b")]
    results = asyncio.run(action.run_failback_batch(items))
    assert [r.outcome for r in results] == ["error", "error"]
    assert "does not exist" in results[0].detail


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


# --- the dispatch window ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "field_name"),
    [
        ({"dispatch_window_seconds": -0.1}, "policy.dispatch_window_seconds"),
        ({"dispatch_window_seconds": "0.2"}, "policy.dispatch_window_seconds"),
        ({"dispatch_window_seconds": True}, "policy.dispatch_window_seconds"),
        ({"dispatch_window_seconds": 60}, "policy.dispatch_window_seconds"),
        ({"dispatch_window_max_seconds": 1e9}, "policy.dispatch_window_max_seconds"),
        ({"dispatch_window_seconds": 0.5, "dispatch_window_max_seconds": 0.2}, "policy.dispatch_window_max_seconds"),
    ],
)
def test_a_bad_dispatch_window_is_one_clear_error(write_config: Any, policy: dict[str, Any], field_name: str) -> None:
    with pytest.raises(ConfigError) as raised:
        write_config(policy=policy)
    assert field_name in str(raised.value)


def test_the_dispatch_window_defaults_and_a_max_below_the_window_follows_it(write_config: Any) -> None:
    config = write_config()
    assert (config.policy.dispatch_window_s, config.policy.dispatch_window_max_s) == (0.2, 1.0)
    wider = write_config(policy={"dispatch_window_seconds": 1.5})
    assert wider.policy.dispatch_window_max_s == 1.5


def _queued(dependency: str, instance: str) -> QueuedAlert:
    return QueuedAlert(
        fingerprint=f"fp-{dependency}",
        starts_at="2026-01-01T00:00:00Z",
        status="firing",
        dependency=dependency,
        instance=instance,
        labels={"alertname": "DependencyDown", "dependency": dependency, "instance": instance},
        annotations={},
        group_key="g",
        received_at=_now(),
    )


def _gather_under_wakes(h: Any) -> tuple[float, float, float]:
    """How long the worker gathers while woken every 50 ms for 2 s (one loop: the worker's wake event belongs
    to it): one dependency waiting; two, each wake bringing a new dependency's alert (a zone failing); two,
    the wakes bringing nothing new (a `notify` alert of a dependency already waiting, a resend)."""

    async def timed(arriving: bool) -> float:
        async def keep_waking() -> None:
            for n in range(40):  # longer than any max below
                if arriving:
                    h.store.enqueue([_queued(f"dep-{n:02d}", f"dep-{n:02d}-a")])
                h.worker.wake.set()
                await asyncio.sleep(0.05)

        waking = asyncio.create_task(keep_waking())
        began = time.monotonic()
        await h.worker.gather()
        waited = time.monotonic() - began
        waking.cancel()
        return waited

    async def all_three() -> tuple[float, float, float]:
        h.store.enqueue([_queued("payments", "payments-a")])
        one = await timed(arriving=False)  # one failing dependency, however many webhooks: the window only
        h.store.enqueue([_queued("cache", "cache-a")])
        quiet = await timed(arriving=False)  # two, nothing new comes: the window twice, never the max
        return one, await timed(arriving=True), quiet  # new dependencies keep coming: gathered up to the max

    return asyncio.run(all_three())


def test_one_dependency_waits_the_window_and_a_burst_of_several_at_most_the_max(harness: Any) -> None:
    h = harness(
        RecordingAction(), mode="act", policy={"dispatch_window_seconds": 0.1, "dispatch_window_max_seconds": 0.6}
    )
    alone, burst, _ = _gather_under_wakes(h)
    assert 0.08 <= alone < 0.3
    assert 0.55 <= burst < 0.9


def test_wakes_that_bring_no_new_dependency_do_not_keep_a_burst_gathering(harness: Any) -> None:
    # Issue 16: on the lab each dependency's `notify` alert came in a second webhook 0.25 s after its
    # `DepmirrorPrimaryDown`; the zone's last batch waited for those wakes. Only a new dependency restarts the
    # window now (the old gather waited the whole max here).
    h = harness(
        RecordingAction(), mode="act", policy={"dispatch_window_seconds": 0.1, "dispatch_window_max_seconds": 0.6}
    )
    _, burst, quiet = _gather_under_wakes(h)
    assert 0.18 <= quiet < 0.35, quiet
    assert burst > quiet + 0.2


def test_a_max_equal_to_the_window_is_the_old_fixed_wait(harness: Any) -> None:
    h = harness(
        RecordingAction(), mode="act", policy={"dispatch_window_seconds": 0.1, "dispatch_window_max_seconds": 0.1}
    )
    alone, burst, quiet = _gather_under_wakes(h)
    assert 0.08 <= alone < 0.3 and 0.08 <= burst < 0.3 and 0.08 <= quiet < 0.3
