"""Between the store's dataclasses and PostgreSQL's rows: times, JSON and text, as SQLite keeps them.

- Times cross as aware datetimes and come back in UTC, whatever the session's TimeZone.
- JSON is stored as jsonb and read back with its keys sorted, as SQLite's sorted JSON text reads back, so
  that `depmirror history --format json` prints the same bytes on both backends.
- PostgreSQL cannot store U+0000 in text or jsonb; SQLite can. Alert text is data from whatever Prometheus
  scrapes, and one NUL must not make an alert unstorable (Alertmanager would resend it forever), so a NUL
  is stored as U+FFFD, the replacement character.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from depmirror.store.model import ActionRecord, Event, QueuedAlert

_NUL = "\x00"
_REPLACEMENT = "\ufffd"

EVENT_COLUMNS = (
    "id, ts, kind, dependency, instance, target, action, decision, reason, outcome, duration_s, "
    "trigger, inputs, details"
)
ALERT_COLUMNS = (
    "id, fingerprint, starts_at, status, dependency, instance, labels, annotations, group_key, "
    "received_ts, not_before_ts, retry_of, attempts"
)
ACTION_COLUMNS = "action_id, kind, dependency, instance, runner_id, started_ts, queue_ids, external_id, trigger, inputs"


def aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("store times must be timezone-aware (UTC)")
    return when


def utc(when: datetime) -> datetime:
    return when.astimezone(UTC)


def text(value: str) -> str:
    return value.replace(_NUL, _REPLACEMENT) if _NUL in value else value


def maybe_text(value: str | None) -> str | None:
    return None if value is None else text(value)


def jsonb(value: Any) -> Jsonb:
    return Jsonb(value, dumps=_dumps)


def loads(data: str | bytes) -> Any:
    """jsonb's output with every object's keys sorted (jsonb keeps its own order, not the one written)."""
    return json.loads(data, object_pairs_hook=lambda pairs: dict(sorted(pairs)))


def _dumps(value: Any) -> str:
    dumped = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    if "\\u0000" in dumped:
        dumped = json.dumps(_without_nul(json.loads(dumped)), sort_keys=True, separators=(",", ":"))
    return dumped


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return text(value)
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {text(key): _without_nul(item) for key, item in value.items()}
    return value


def event_params(event: Event) -> tuple[Any, ...]:
    return (
        aware(event.time),
        text(event.kind),
        text(event.dependency),
        maybe_text(event.instance),
        maybe_text(event.target),
        maybe_text(event.action),
        text(event.decision),
        text(event.reason),
        text(event.outcome),
        event.duration_s,
        jsonb(event.trigger),
        jsonb(event.inputs),
        jsonb(event.details),
    )


def alert_params(alert: QueuedAlert) -> tuple[Any, ...]:
    not_before = alert.not_before or alert.received_at
    return (
        text(alert.fingerprint),
        text(alert.starts_at),
        text(alert.status),
        text(alert.dependency),
        text(alert.instance),
        jsonb(alert.labels),
        jsonb(alert.annotations),
        text(alert.group_key),
        aware(alert.received_at),
        aware(not_before),
        "pending" if alert.ignore_reason is None else "done",
    )


def action_params(record: ActionRecord) -> tuple[Any, ...]:
    return (
        text(record.action_id),
        text(record.kind),
        text(record.dependency),
        text(record.instance),
        text(record.runner_id),
        aware(record.started_at),
        list(record.queue_ids),
        maybe_text(record.external_id),
        jsonb(record.trigger),
        jsonb(record.inputs),
    )


def event_from_row(row: DictRow) -> Event:
    return Event(
        id=row["id"],
        time=utc(row["ts"]),
        kind=row["kind"],
        dependency=row["dependency"],
        instance=row["instance"],
        target=row["target"],
        action=row["action"],
        decision=row["decision"],
        reason=row["reason"],
        outcome=row["outcome"],
        duration_s=row["duration_s"],
        trigger=row["trigger"],
        inputs=row["inputs"],
        details=row["details"],
    )


def action_from_row(row: DictRow) -> ActionRecord:
    return ActionRecord(
        action_id=row["action_id"],
        kind=row["kind"],
        dependency=row["dependency"],
        instance=row["instance"],
        runner_id=row["runner_id"],
        started_at=utc(row["started_ts"]),
        queue_ids=tuple(row["queue_ids"]),
        external_id=row["external_id"],
        trigger=row["trigger"],
        inputs=row["inputs"],
    )


def alert_from_row(row: DictRow) -> QueuedAlert:
    return QueuedAlert(
        id=row["id"],
        fingerprint=row["fingerprint"],
        starts_at=row["starts_at"],
        status=row["status"],
        dependency=row["dependency"],
        instance=row["instance"],
        labels=row["labels"],
        annotations=row["annotations"],
        group_key=row["group_key"],
        received_at=utc(row["received_ts"]),
        not_before=utc(row["not_before_ts"]),
        retry_of=row["retry_of"],
        attempts=row["attempts"],
    )


def stamp(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()
