"""One rollback-history event from a playbook: the `rollback_history` module's library side."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from depmirror.errors import ConfigError
from depmirror.store import EVENT_KINDS, Event, open_store


def record_event(store_url: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Append an event built from `fields` (the module's options) and return it as stored."""
    kind = fields["kind"]
    if kind not in EVENT_KINDS:
        allowed = ", ".join(EVENT_KINDS)
        raise ConfigError("rollback_history", "kind", f"unknown event kind {kind!r}", f"use one of {allowed}")
    event = Event(
        kind=kind,
        dependency=fields["dependency"],
        outcome=fields["outcome"],
        time=datetime.now(UTC),
        instance=fields.get("instance"),
        target=fields.get("target"),
        action=fields.get("action"),
        trigger=fields.get("trigger") or {},
        inputs=fields.get("inputs") or {},
        decision=fields.get("decision") or "",
        reason=fields.get("reason") or "",
        duration_s=fields.get("duration_s"),
        details=fields.get("details") or {},
    )
    with open_store(store_url) as store:
        stored = store.append_event(event)
        if fields.get("set_primary") and kind in ("rollback", "failback") and fields["outcome"] == "succeeded":
            store.set_primary(fields["dependency"], fields["set_primary"])
    return stored.as_dict()
