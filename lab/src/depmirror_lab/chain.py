"""What happened at each step of the failover chain after one fault, from the parts' own records.

fault -> probe failed (Prometheus's probe_success samples) -> alert firing (ALERTS) -> Alertmanager
(its debug log: received, group flushed, notified) -> webhook received (the runner's queue) -> the runner's
decision (its events, with the reason) -> switched (the rollback event) -> the failback that followed.

Times are seconds after the fault (`t+`), so a slow or failed fault reads as a timeline; `steps_s` is the
time each step took, and `broke_at` names the first step that did not happen. The lab's store is SQLite
(bench and e2e deploy their own); its queue rows are read directly, read-only, as nothing else lists them.
"""

from __future__ import annotations

import json
import re
import sqlite3
import urllib.parse
import urllib.request
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from depmirror.store import EventFilter, open_store

# Kept in a chain: enough to read the story, bounded so a JSON of many faults stays small.
MAX_LINES = 40
MAX_SAMPLES = 30
# alertmanager_flushed: Alertmanager flushed the alert's group, i.e. began the webhook's POST (its "Notify
# success" line comes after the runner's 202, so it cannot time the step before the webhook).
STEPS = ("probe_failed", "alert_firing", "alertmanager_flushed", "webhook_received", "action_started", "switched")
ACTED_ON = ("DepmirrorPrimaryDown", "DepmirrorInstanceDown")
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
_LOGFMT_TIME = re.compile(r"\bts=(\S+)")


def _query(prometheus_url: str, query: str, at: float, timeout_s: float = 3.0) -> list[dict[str, Any]]:
    """An instant query (a range vector gives every raw sample with its own timestamp); [] on any failure:
    a diagnosis must never itself stop the bench."""
    url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query, "time": f"{at:.3f}"})
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            body = json.load(response)
    except (OSError, ValueError):
        return []
    result = body.get("data", {}).get("result", []) if isinstance(body, dict) else []
    return result if isinstance(result, list) else []


def _points(series: dict[str, Any]) -> list[tuple[float, float]]:
    return [(float(t), float(v)) for t, v in series.get("values", [])]


def _rel(value: float | None, fault_at: float) -> float | None:
    return None if value is None else round(value - fault_at, 3)


def probe_samples(prometheus_url: str, dependency: str, host: str, fault_at: float, until: float) -> dict[str, Any]:
    """The instance's probe results around the fault: when the first failed probe started (its sample's
    timestamp is the scrape's start) and when Prometheus had it (start + the probe's duration)."""
    window = max(5, int(until - fault_at) + 5)
    selector = f'{{dependency="{dependency}", host="{host}"}}'
    success = _query(prometheus_url, f"probe_success{selector}[{window}s]", until)
    durations = _query(prometheus_url, f"probe_duration_seconds{selector}[{window}s]", until)
    took = {t: v for series in durations for t, v in _points(series)}
    samples = sorted({(t, v) for series in success for t, v in _points(series)})
    failed = next(((t, took.get(t)) for t, v in samples if v < 0.5 and t >= fault_at - 1.0), None)
    # A probe that began just before the fault can still fail from it; one that ended before cannot.
    if failed is not None and failed[0] < fault_at and failed[0] + (failed[1] or 0.0) < fault_at:
        failed = next(((t, took.get(t)) for t, v in samples if v < 0.5 and t >= fault_at), None)
    return {
        "first_failed_probe_started": failed[0] if failed else None,
        "first_failed_probe_took_s": None if failed is None or failed[1] is None else round(failed[1], 3),
        "seen_at": None if failed is None else failed[0] + (failed[1] or 0.0),
        "last_ok_probe_before": max((t for t, v in samples if v >= 0.5 and t < (failed or (until,))[0]), default=None),
        "samples": [[_rel(t, fault_at), v] for t, v in samples if t >= fault_at - 3][:MAX_SAMPLES],
    }


def alert_states(prometheus_url: str, dependency: str, host: str, fault_at: float, until: float) -> dict[str, Any]:
    """ALERTS for the instance: the first evaluation that had each alert pending or firing after the fault."""
    window = max(5, int(until - fault_at) + 5)
    selector = f'{{dependency="{dependency}", instance="{dependency}@{host}"}}'
    found: dict[str, float] = {}
    for series in _query(prometheus_url, f"ALERTS{selector}[{window}s]", until):
        labels = series.get("metric", {})
        key = f"{labels.get('alertname', '?')}/{labels.get('alertstate', '?')}"
        times = [t for t, _ in _points(series) if t >= fault_at - 0.5]
        if times:
            found[key] = min([*times, found.get(key, times[0])])
    firing = sorted((t, k.split("/")[0]) for k, t in found.items() if k.endswith("/firing"))
    # The alerts the runner acts on come first: a hung probe also fires the latency alert, at the same time.
    firing = [f for f in firing if f[1] in ACTED_ON] or firing
    return {
        "firing_at": firing[0][0] if firing else None,
        "alertname": firing[0][1] if firing else None,
        "first_seen": {k: _rel(t, fault_at) for k, t in sorted(found.items(), key=lambda kv: kv[1])},
    }


def queued_alerts(store_url: str, dependency: str, host: str, since: float) -> list[dict[str, Any]]:
    """The webhooks the runner received for the instance (its durable queue), oldest first."""
    if not store_url.startswith("sqlite:///"):
        return []
    path = store_url.removeprefix("sqlite:///")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0) as db:
            rows = db.execute(
                "SELECT id, fingerprint, status, labels, received_ts, state, action_id, attempts "
                "FROM alert_queue WHERE dependency = ? AND (instance = ? OR instance = ?) AND received_ts >= ? "
                "ORDER BY id LIMIT 50",
                (dependency, f"{dependency}@{host}", host, since),
            ).fetchall()
    except sqlite3.Error:
        return []
    return [
        {
            "queue_id": row[0],
            "fingerprint": row[1],
            "status": row[2],
            "alertname": json.loads(row[3]).get("alertname"),
            "received_at": row[4],
            "state": row[5],
            "action_id": row[6],
            "attempts": row[7],
        }
        for row in rows
    ]


def action_rows(store_url: str, dependency: str, since: float) -> list[dict[str, Any]]:
    """The runner's action journal for the dependency: when each action started and finished."""
    if not store_url.startswith("sqlite:///"):
        return []
    try:
        with sqlite3.connect(f"file:{store_url.removeprefix('sqlite:///')}?mode=ro", uri=True, timeout=2.0) as db:
            rows = db.execute(
                "SELECT action_id, kind, instance, started_ts, finished_ts FROM actions "
                "WHERE dependency = ? AND started_ts >= ? ORDER BY started_ts LIMIT 20",
                (dependency, since),
            ).fetchall()
    except sqlite3.Error:
        return []
    return [{"action_id": r[0], "kind": r[1], "instance": r[2], "started_at": r[3], "finished_at": r[4]} for r in rows]


def decisions(store_url: str, dependency: str, since: float) -> list[dict[str, Any]]:
    """Every event the store recorded for the dependency since `since`, oldest first, with its reason."""
    with open_store(store_url) as store:
        found = store.events(EventFilter(dependency=dependency, since=datetime.fromtimestamp(since, UTC), limit=50))
    return [
        {
            "id": e.id,
            "at": e.time.timestamp(),
            "kind": e.kind,
            "action": e.action,
            "outcome": e.outcome,
            "instance": e.instance,
            "target": e.target,
            "decision": e.decision,
            "reason": e.reason[:400],
            "alertname": e.trigger.get("alertname"),
            "switched_at": e.details.get("switched_at"),
            "health": {k: e.inputs.get(k) for k in ("failed_instance", "candidates") if k in e.inputs},
        }
        for e in sorted(found, key=lambda e: e.id or 0)
    ]


def log_lines(
    file: Path,
    start: float,
    end: float,
    needles: Iterable[str],
    always: Iterable[str] = (),
    limit: int | None = MAX_LINES,
) -> list[str]:
    """Lines of a log written between start and end that name one of `needles` or carry one of `always`
    (levels such as WARNING); the first `limit` of them, as a fault's chain starts at the fault."""
    needles, always = tuple(n for n in needles if n), tuple(always)
    try:
        text = file.read_text(errors="replace")
    except OSError:
        return []
    kept: list[str] = []
    for line in text.splitlines():
        when = line_time(line)
        if when is None or not start <= when <= end:
            continue
        if any(n in line for n in needles) or any(a in line for a in always):
            kept.append(line[:400])
    return kept if limit is None else kept[:limit]


def line_time(line: str) -> float | None:
    """The time of a log line: Python logging's asctime (local time) or logfmt's ts= (RFC 3339)."""
    match = _LOG_TIME.match(line)
    try:
        if match:
            return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        match = _LOGFMT_TIME.search(line)
        if match:
            return datetime.fromisoformat(match.group(1).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    return None


def alertmanager_times(
    lines: list[str], instance: str, fingerprints: Iterable[str], delivered_by: float | None = None
) -> dict[str, float | None]:
    """From Alertmanager's debug log: when it received the firing alert, flushed its group, and notified.

    In a burst (a zone outage) the instance's group is flushed again while the first webhook is still on its
    way, so "the flush" is the last one that came before the webhook arrived (`delivered_by`), not the
    first one after it; without a webhook, the first flush.
    """
    short = tuple(f[:7] for f in fingerprints if f)
    received = None
    flushes: list[float] = []
    for line in lines:
        when = line_time(line)
        if received is None and 'msg="Received alert"' in line and "[active]" in line and any(s in line for s in short):
            received = when
        if when is not None and "msg=flushing" in line and instance in line and "[active]" in line:
            flushes.append(when)
    before = [t for t in flushes if delivered_by is None or t <= delivered_by]
    flushed = (before[-1] if delivered_by is not None else before[0]) if before else (flushes[0] if flushes else None)
    notified = None
    if flushed is not None:
        notified = next(
            (t for line in lines if 'msg="Notify success"' in line and (t := line_time(line)) and t >= flushed), None
        )
    return {"received_at": received, "flushed_at": flushed, "notified_at": notified}


def collect(
    *,
    prometheus_url: str,
    store_url: str,
    logs: Path,
    dependency: str,
    host: str,
    fault_at: float,
    until: float,
    evidence: bool,
) -> dict[str, Any]:
    """The chain of one fault, from `fault_at` to `until`; `evidence` adds samples and log lines."""
    instance = f"{dependency}@{host}"
    probe = probe_samples(prometheus_url, dependency, host, fault_at, until)
    alert = alert_states(prometheus_url, dependency, host, fault_at, until)
    webhooks = queued_alerts(store_url, dependency, host, fault_at - 1.0)
    firing = [w for w in webhooks if w["status"] == "firing"]
    actions = action_rows(store_url, dependency, fault_at - 1.0)
    events = decisions(store_url, dependency, fault_at - 1.0)
    rollback = next((e for e in events if e["kind"] == "rollback"), None)
    switched_at = rollback["switched_at"] if rollback and rollback["outcome"] == "succeeded" else None
    am_lines = log_lines(
        logs / "alertmanager.log",
        fault_at - 1.0,
        until,
        [instance, *(w["fingerprint"][:7] for w in webhooks)],
        # A notification's line names neither the alert nor its group: the ones after the flush are its.
        ('msg="Notify', "level=warn", "level=error"),
        # All of them: in a burst a group is flushed every group_interval, and a cut to the last lines lost
        # the flush that delivered the webhook (negative `webhook_received` steps in bench/zone_outage.py).
        limit=None,
    )
    am = alertmanager_times(
        am_lines, instance, [w["fingerprint"] for w in firing], firing[0]["received_at"] if firing else None
    )
    rollback_action = next((a for a in actions if a["kind"] == "rollback"), None)
    times = {
        "fault": fault_at,
        "probe_failed": probe["seen_at"],
        "alert_firing": alert["firing_at"],
        "alertmanager_flushed": am["flushed_at"],
        "webhook_received": firing[0]["received_at"] if firing else None,
        "action_started": rollback_action["started_at"] if rollback_action else None,
        "switched": switched_at,
    }
    chain: dict[str, Any] = {
        "at": {k: _rel(v, fault_at) for k, v in times.items()},
        "steps_s": _steps(times),
        "broke_at": next((step for step in STEPS if times[step] is None), None),
        "alertname": alert["alertname"],
        "alertmanager": {k: _rel(v, fault_at) for k, v in am.items()},
        "probe": {k: v for k, v in probe.items() if k != "samples"}
        | {
            "first_failed_probe_started": _rel(probe["first_failed_probe_started"], fault_at),
            "seen_at": _rel(probe["seen_at"], fault_at),
            "last_ok_probe_before": _rel(probe["last_ok_probe_before"], fault_at),
        },
        "webhooks": [w | {"received_at": _rel(w["received_at"], fault_at)} for w in webhooks],
        "decisions": [
            e | {"at": _rel(e["at"], fault_at), "switched_at": _rel(e["switched_at"], fault_at)} for e in events
        ],
    }
    if evidence:
        chain["probe_samples"] = probe["samples"]
        chain["alerts_seen"] = alert["first_seen"]
        chain["actions"] = [
            a | {"started_at": _rel(a["started_at"], fault_at), "finished_at": _rel(a["finished_at"], fault_at)}
            for a in actions
        ]
        chain["logs"] = {
            "runner": log_lines(logs / "runner.log", fault_at - 1.0, until, [dependency], ("WARNING", "ERROR")),
            "alertmanager": [
                line for line in am_lines if "level=debug" not in line or "Notify" in line or "flushing" in line
            ][:MAX_LINES],
            "prometheus": log_lines(logs / "prometheus.log", fault_at - 1.0, until, [], ("level=warn", "level=error")),
        }
    return chain


def _steps(times: dict[str, float | None]) -> dict[str, float | None]:
    """Each step's duration: from the step before it that happened to this one."""
    steps: dict[str, float | None] = {}
    previous = times["fault"]
    for step in STEPS:
        now = times[step]
        steps[step] = None if now is None or previous is None else round(now - previous, 3)
        previous = now if now is not None else previous
    return steps
