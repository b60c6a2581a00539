"""Fuzz: hostile and malformed webhook bodies against the real app. 0 crashes, 0 5xx, 0 actions.

DEPMIRROR_FUZZ_EXAMPLES sets the number of payloads. CI runs 10,000 (issue 8; ~72 s on 2 cores); the
default of 1,000 keeps the everyday suite fast.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fakes.webhook import RecordingAction, StaticHealth, alert, notification

from depmirror.store import EventFilter

EXAMPLES = int(os.environ.get("DEPMIRROR_FUZZ_EXAMPLES", "1000"))

json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
json_any = st.recursive(
    json_leaf,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)
# Valid-looking alerts with one field broken, so fuzzing reaches deep into validation.
alert_keys = st.sampled_from(["status", "labels", "annotations", "startsAt", "endsAt", "fingerprint", "generatorURL"])
top_keys = st.sampled_from(["version", "status", "receiver", "groupKey", "alerts", "commonLabels", "truncatedAlerts"])
hostile_text = st.lists(
    st.characters(codec="utf-8") | st.sampled_from(["\x00", "\ud800", "'", '"', "%s", "\n"]), max_size=30
).map("".join)


@st.composite
def broken_payload(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=200))
    if choice == 1:
        return json.dumps(draw(json_any)).encode()
    # The base alert names no known dependency, so even a mutation that stays valid must not act.
    body = notification(
        alert(
            dependency=draw(st.sampled_from(["nope", ""]) | hostile_text),
            fingerprint=draw(hostile_text.filter(bool)) if draw(st.booleans()) else "f",
        )
    )
    if choice == 2:
        target = body["alerts"][0]
        key = draw(alert_keys)
    else:
        target = body
        key = draw(top_keys)
    if draw(st.booleans()):
        target.pop(key, None)
    else:
        target[key] = draw(json_any | hostile_text)
    # Keep the hostile lone surrogates: json.dumps escapes them, as a hostile sender would.
    return json.dumps(body).encode()


def test_hostile_payloads_never_crash_5xx_or_act(harness: Any) -> None:
    action = RecordingAction()
    h = harness(action, StaticHealth(candidates={"payments-b": "healthy"}), mode="act", policy={"cooldown_seconds": 0})
    statuses: dict[int, int] = {}
    loop = asyncio.new_event_loop()
    client = loop.run_until_complete(h.client())

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(broken_payload())
    def post(body: bytes) -> None:
        response = loop.run_until_complete(h.post(client, body))
        statuses[response.status] = statuses.get(response.status, 0) + 1
        assert response.status < 500

    try:
        post()
        loop.run_until_complete(h.settle())
    finally:
        loop.run_until_complete(client.close())
        loop.close()
    assert sum(statuses.values()) >= EXAMPLES * 0.9
    assert statuses.get(400, 0) > EXAMPLES / 2  # the fuzzer mostly produced invalid bodies, and they were refused
    assert action.requests == []
    kinds = {e.kind for e in h.store.events(EventFilter(limit=None))}
    assert kinds <= {"alert_ignored"}
    print(f"fuzz: {sum(statuses.values())} payloads, HTTP statuses {sorted(statuses.items())}")
