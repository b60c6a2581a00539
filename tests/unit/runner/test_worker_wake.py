"""The worker's loop never loses a wake: a webhook that lands while a pass runs starts the next pass."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.fakes.webhook import RecordingAction, StaticHealth, alert, notification

from depmirror.runner import worker as worker_module


def test_a_webhook_during_a_pass_is_handled_without_waiting_for_the_idle_tick(
    harness: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The idle tick made long: an alert handled within the bound below was woken by its webhook, not by it.
    monkeypatch.setattr(worker_module, "IDLE_PASS_S", 60.0)
    action = RecordingAction()
    h = harness(action, StaticHealth(candidates={"payments-b": "healthy"}), mode="act")
    passes = 0
    real_dispatch = h.worker.dispatch

    async def scenario() -> None:
        nonlocal passes
        client = await h.client()
        delivered = asyncio.Event()

        async def dispatch_with_a_webhook_in_flight() -> None:
            nonlocal passes
            passes += 1
            await real_dispatch()
            if passes == 1:
                # After the pass read the queue, before it returned: as a webhook landing mid-pass.
                assert (await h.post(client, notification(alert()))).status == 202
                delivered.set()

        h.worker.dispatch = dispatch_with_a_webhook_in_flight
        stop = asyncio.Event()
        loop = asyncio.create_task(h.worker.run(stop))
        try:
            await asyncio.wait_for(delivered.wait(), timeout=10)
            for _ in range(100):  # bounded: 10 s
                if action.requests:
                    break
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            h.worker.wake.set()
            await asyncio.wait_for(loop, timeout=10)
            await h.worker.drain(10.0)
            await client.close()

    asyncio.run(scenario())
    assert [r.instance for r in action.requests] == ["payments-a"], "the alert waited for the idle tick"
    assert passes >= 2
