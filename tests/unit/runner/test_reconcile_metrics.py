"""Reconciliation on the runner's /metrics (issue 21): real passes over a real SQLite store holding the example
graph's applied plan (test_reconcile.py's setup), scraped as Prometheus would (the runner's own /metrics over
aiohttp, or the registry it serves), asserting the series an alert reads. The alert rule of docs/runner.md is
run by Prometheus's own rule engine (`promtool test rules`) on synthetic series."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tests.unit.runner.test_reconcile import EXAMPLE, RecordingFrontend, _override, _set, fleet_config
from tests.unit.runner.test_reconcile_service import _wait, runner

from depmirror.fleet.plan_diff import DependencyChange, plan_diff
from depmirror.runner.app import build_app
from depmirror.runner.metrics import RECONCILE_CHANGES, RECONCILE_OUTCOMES, RunnerMetrics, change_kind, pass_outcome
from depmirror.runner.reconcile import LEASE, Reconciler, reconciler_for
from depmirror.runner.store_caller import StoreCaller
from depmirror.store import open_store

__all__ = ["fleet_config", "runner"]  # fixtures shared with test_reconcile.py and test_reconcile_service.py

DOCS = Path(__file__).resolve().parents[3] / "docs" / "runner.md"
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) missing")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def _passes(samples: Samples) -> dict[str, float]:
    """outcome -> count, for the outcomes that counted anything."""
    counted = {o: _value(samples, "depmirror_reconcile_passes_total", outcome=o) for o in RECONCILE_OUTCOMES}
    return {outcome: count for outcome, count in counted.items() if count}


def _pending(samples: Samples) -> dict[str, float]:
    return {
        s: _value(samples, "depmirror_reconcile_pending_dependencies", state=s)
        for s in ("actionable", "held", "shadow")
    }


def _last_success(samples: Samples) -> float:
    return _value(samples, "depmirror_reconcile_last_success_timestamp_seconds")


class Scraped:
    """A reconciler counting on a RunnerMetrics, scraped the way Prometheus reads the runner."""

    def __init__(self, config: Any, frontend: Any, **kwargs: Any) -> None:
        self.metrics = RunnerMetrics()
        self.reconciler = Reconciler(
            config,
            StoreCaller(open_store(config.store)),
            frontend,
            metrics=self.metrics.for_reconcile(frontend.name),
            **kwargs,
        )

    def passes(self, *whys: str) -> list[str]:
        async def run() -> list[str]:
            return [(await self.reconciler.reconcile(why)).outcome for why in whys]

        return asyncio.run(run())

    def scrape(self) -> Samples:
        return _parse(generate_latest(self.metrics.registry).decode())

    def close(self) -> None:
        self.reconciler.db.shutdown()
        self.reconciler.db.store.close()


@pytest.fixture
def scraped() -> Any:
    made: list[Scraped] = []

    def make(config: Any, frontend: Any, **kwargs: Any) -> Scraped:
        made.append(Scraped(config, frontend, **kwargs))
        return made[-1]

    yield make
    for one in made:
        one.close()


# --- through the runner's /metrics ---------------------------------------------------------------------
def test_a_noop_pass_is_on_the_runners_metrics_endpoint_with_the_time_of_its_success(fleet_config: Any) -> None:
    """The wiring `depmirror serve` uses (reconciler_for with the runner's metrics), read over HTTP."""
    config = fleet_config()
    metrics = RunnerMetrics()
    reconciler = reconciler_for(config, wake_worker=lambda: None, metrics=metrics)
    assert reconciler is not None
    db = StoreCaller(open_store(config.store))

    async def scenario() -> tuple[str, float, float]:
        began = time.time()
        await reconciler.reconcile("test")
        ended = time.time()
        app = build_app(config, db, metrics, lambda: None, lambda: True)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        try:
            response = await client.get("/metrics")
            assert response.status == 200
            return await response.text(), began, ended
        finally:
            await client.close()

    try:
        text, began, ended = asyncio.run(scenario())
    finally:
        for caller in (db, reconciler.db):
            caller.shutdown()
            caller.store.close()
    samples = _parse(text)
    assert _passes(samples) == {"noop": 1}
    assert began <= _last_success(samples) <= ended
    assert _pending(samples) == {"actionable": 0, "held": 0, "shadow": 0}
    # Every outcome an alert may read exists from the start, at 0 (increase() needs a first sample).
    assert _value(samples, "depmirror_reconcile_passes_total", outcome="failed") == 0


def test_depmirror_serve_counts_its_start_pass_on_metrics(runner: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    """The runner as a process (test_reconcile_service.py's): its pass at start is on /metrics."""
    process, _, tmp_path = runner
    port = yaml.safe_load((tmp_path / "runner.yml").read_text())["listen"]["port"]

    def scraped() -> Samples:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return _parse(response.read().decode())

    _wait(lambda: _passes(scraped()).get("noop"), 30, "the start pass on /metrics")
    samples = scraped()
    assert _passes(samples) == {"noop": 1} and _last_success(samples) > 0
    assert process.poll() is None


def test_a_runner_that_does_not_reconcile_exports_no_reconcile_series(fleet_config: Any) -> None:
    """An alert on the loop must not read a loop that is not there (last success 0, forever)."""
    config = fleet_config(enabled=False)
    metrics = RunnerMetrics()
    assert reconciler_for(config, wake_worker=lambda: None, metrics=metrics) is None
    assert "depmirror_reconcile_" not in generate_latest(metrics.registry).decode()


# --- what each pass leaves on the metrics --------------------------------------------------------------
def test_a_failed_adjust_counts_failed_leaves_the_last_success_alone_and_the_change_pending(
    fleet_config: Any, scraped: Any
) -> None:
    config = fleet_config(min_gap_seconds=60)
    frontend = RecordingFrontend(outcome="failed")
    one = scraped(config, frontend)
    assert one.passes("start") == ["nothing"]
    succeeded_at = _last_success(one.scrape())
    _set(config, _override("reports-api", rf_min=2))
    assert one.passes("override", "again") == ["launched", "skipped"]  # the second waits for min_gap
    samples = one.scrape()
    assert _passes(samples) == {"noop": 1, "failed": 1, "skipped_gap": 1}
    assert _last_success(samples) == succeeded_at, "a failed adjust is no success"
    assert _pending(samples) == {"actionable": 1, "held": 0, "shadow": 0}
    labels = {"frontend": "recording", "outcome": "failed"}
    assert _value(samples, "depmirror_reconcile_adjust_duration_seconds_count", **labels) == 1
    assert _value(samples, "depmirror_reconcile_dependency_changes_total", change="rf_up", outcome="failed") == 1
    assert len(frontend.calls) == 1


def test_an_applied_adjust_counts_applied_updates_the_last_success_and_clears_what_it_applied(
    fleet_config: Any, scraped: Any
) -> None:
    config = fleet_config()
    _set(config, _override("reports-api", rf_min=2))
    one = scraped(config, RecordingFrontend())
    began = time.time()
    assert one.passes("override") == ["launched"]
    samples = one.scrape()
    assert _passes(samples) == {"applied": 1}
    assert _last_success(samples) >= began
    assert _pending(samples) == {"actionable": 0, "held": 0, "shadow": 0}
    labels = {"frontend": "recording", "outcome": "succeeded"}
    assert _value(samples, "depmirror_reconcile_adjust_duration_seconds_count", **labels) == 1
    # The recording frontend answers at once: the observation is in the smallest bucket (1 s).
    assert _value(samples, "depmirror_reconcile_adjust_duration_seconds_bucket", le="1.0", **labels) == 1
    assert _value(samples, "depmirror_reconcile_dependency_changes_total", change="rf_up", outcome="succeeded") == 1


def test_a_held_change_is_pending_as_held_and_the_pass_did_what_the_rules_allow(
    fleet_config: Any, scraped: Any
) -> None:
    config = fleet_config()
    _set(config, _override("reports-api", rf_min=2, rollback="frozen"))
    frontend = RecordingFrontend()
    one = scraped(config, frontend)
    began = time.time()
    assert one.passes("override") == ["held"]
    samples = one.scrape()
    assert _passes(samples) == {"held": 1}
    assert _pending(samples) == {"actionable": 0, "held": 1, "shadow": 0}
    assert _last_success(samples) >= began and frontend.calls == []


def test_shadow_mode_counts_shadow_passes_and_its_pending_changes(fleet_config: Any, scraped: Any) -> None:
    config = fleet_config(mode="shadow")
    _set(config, _override("reports-api", rf_min=2), _override("audit-log", rf_min=2))
    one = scraped(config, RecordingFrontend())
    assert one.passes("a", "b") == ["shadow", "shadow"]
    samples = one.scrape()
    assert _passes(samples) == {"shadow": 2}
    assert _pending(samples) == {"actionable": 0, "held": 0, "shadow": 2}


def test_an_unreadable_prometheus_counts_its_own_outcome_and_keeps_the_last_known_pending(
    fleet_config: Any, scraped: Any
) -> None:
    config = fleet_config(prometheus_url="http://127.0.0.1:9")
    _set(config, _override("reports-api", rf_min=2))
    one = scraped(config, RecordingFrontend())
    assert one.passes("test") == ["skipped"]
    samples = one.scrape()
    assert _passes(samples) == {"prometheus_unreadable": 1}
    assert _last_success(samples) == 0
    assert _pending(samples) == {"actionable": 0, "held": 0, "shadow": 0}, "a plan on unknown health is no diff"


def test_passes_held_back_by_another_runner_or_a_switchover_count_as_skipped(fleet_config: Any, scraped: Any) -> None:
    config = fleet_config()
    _set(config, _override("reports-api", rf_min=2))
    one = scraped(config, RecordingFrontend())
    with open_store(config.store) as store:
        lease = store.acquire_lease(LEASE, "another-runner", 30.0)
        assert lease is not None
    assert one.passes("test") == ["skipped"]
    with open_store(config.store) as store:
        store.release_lease(LEASE, "another-runner", lease)
        assert store.acquire_lease("reports-api", "the-worker", 30.0) is not None
    assert one.passes("test") == ["skipped"]
    samples = one.scrape()
    assert _passes(samples) == {"skipped_lease": 1, "skipped_switchover": 1}
    assert _last_success(samples) == 0
    assert _pending(samples)["actionable"] == 1, "the diff was read before the switchover's lease stopped it"


def test_a_plan_that_cannot_be_computed_and_a_pass_that_raises_are_counted(fleet_config: Any, scraped: Any) -> None:
    config = fleet_config()
    with open_store(config.store) as store:
        store.set_applied_plan({"plan": {"dependencies": "{{ lookup('pipe', 'id') }}"}, "state": {}})
    broken = scraped(config, RecordingFrontend())
    assert broken.passes("test") == ["skipped"]
    assert _passes(broken.scrape()) == {"plan_error": 1}

    def bug() -> Any:
        raise RuntimeError("a bug in the differ")

    raising = scraped(config, RecordingFrontend(), diff=bug)
    with pytest.raises(RuntimeError):
        raising.passes("test")
    assert _passes(raising.scrape()) == {"error": 1}


# --- the kinds of change --------------------------------------------------------------------------------
def test_the_instance_a_failover_dropped_is_an_rf_up_change(fleet_config: Any) -> None:
    """What the runner's switchover leaves (test_reconcile.py's scenario): the change puts an instance back."""
    config = fleet_config()
    with open_store(config.store) as store:
        record = store.applied_plan() or {}
        item = next(d for d in record["plan"]["dependencies"] if d["name"] == "catalog-api")
        failed = item["primary"]["host"]
        item["instances"] = [i for i in item["instances"] if i["host"] != failed]
        store.set_applied_plan(record)
    [change] = plan_diff(EXAMPLE, store=config.store).changes
    assert change_kind(change) == "rf_up"


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        (None, {"instances": ["a:primary"]}, "added"),
        ({"instances": ["a:primary"]}, None, "removed"),
        ({"instances": ["a:primary", "b:standby"]}, {"instances": ["a:primary"]}, "rf_down"),
        ({"instances": ["a:primary", "b:standby"]}, {"instances": ["a:primary", "c:standby"]}, "moved"),
        ({"instances": ["a:primary"], "primary": "a"}, {"instances": ["a:primary"], "primary": "b"}, "moved"),
        ({"instances": ["a:primary"], "port": 80}, {"instances": ["a:primary"], "port": 81}, "other"),
    ],
)
def test_each_kind_of_change(before: Any, after: Any, kind: str) -> None:
    assert kind in RECONCILE_CHANGES and change_kind(DependencyChange("d", before, after, ("a",))) == kind


def test_every_pass_maps_to_a_declared_outcome() -> None:
    causes = ["gap", "lease", "switchover", "prometheus", "plan", "error", "something new"]
    mapped = {pass_outcome("skipped", c) for c in causes}
    mapped |= {pass_outcome("launched", o) for o in ("succeeded", "failed", "error")}
    mapped |= {pass_outcome(o, "") for o in ("nothing", "held", "shadow")}
    assert mapped == set(RECONCILE_OUTCOMES)


# --- the alert rule in docs/runner.md -------------------------------------------------------------------
def _doc_rules() -> dict[str, Any]:
    """The YAML block after the 'Reconciliation metrics' heading: what a user copies."""
    text = DOCS.read_text()
    section = text[text.index("### Reconciliation metrics") :]
    found = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert found is not None, "no rule block in the Reconciliation metrics section"
    rules: dict[str, Any] = yaml.safe_load(found.group(1))
    return rules


def _series(name: str, values: str, runner: str = "runner-1", **labels: str) -> dict[str, str]:
    text = ", ".join(f'{k}="{v}"' for k, v in {"job": "depmirror-runner", "instance": runner, **labels}.items())
    return {"series": f"{name}{{{text}}}", "values": values}


@needs_promtool
def test_the_documented_alert_fires_for_a_stalled_loop_with_changes_pending_and_only_then(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(_doc_rules()))
    checked = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    [rule] = [r for g in _doc_rules()["groups"] for r in g["rules"] if "alert" in r]
    alert, firing = rule["alert"], {"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}
    last, pending = "depmirror_reconcile_last_success_timestamp_seconds", "depmirror_reconcile_pending_dependencies"
    # Promtool's clock starts at 0; one sample a minute for 30 minutes.
    stalled = [_series(last, "0x30"), _series(pending, "1x30", state="actionable")]  # never a success since 0
    working = [_series(last, "0+60x30"), _series(pending, "1x30", state="actionable")]  # succeeds every minute
    nothing_to_do = [_series(last, "0x30"), _series(pending, "0x30", state="actionable")]
    only_held = [
        _series(last, "0x30"),
        _series(pending, "0x30", state="actionable"),
        _series(pending, "2x30", state="held"),
    ]
    # Two runners: one stalled, the other succeeding: the loop works (one adjust at a time across runners).
    several = [
        _series(last, "0x30"),
        _series(last, "0+60x30", runner="runner-2"),
        _series(pending, "1x30", state="actionable"),
        _series(pending, "1x30", runner="runner-2", state="actionable"),
    ]
    tests = [
        {
            "interval": "1m",
            "input_series": stalled,
            "alert_rule_test": [
                {"eval_time": "9m", "alertname": alert, "exp_alerts": []},
                {"eval_time": "11m", "alertname": alert, "exp_alerts": [firing]},
            ],
        },
        *(
            {"interval": "1m", "input_series": series, "alert_rule_test": [{"eval_time": "25m", "alertname": alert}]}
            for series in (working, nothing_to_do, only_held, several)
        ),
    ]
    test = tmp_path / "test.yml"
    test.write_text(yaml.safe_dump({"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": tests}))
    result = subprocess.run(["promtool", "test", "rules", str(test)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
