"""The re-checks of one dispatch pass go to the health checker as one `check_many` call; a member that
settles without a re-check, or hangs, never holds the others back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from tests.fakes.webhook import StaticHealth
from tests.unit.runner.test_zones_runner import _work, make, zone_alert

from depmirror.runner.health import HealthBatch, HealthRequest, HealthView

__all__ = ["make"]


class CountingHealth(StaticHealth):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batches: list[list[str]] = []
        self.single: list[str] = []

    async def check(self, dependency: str, failed_instance: str) -> HealthView:
        self.single.append(dependency)
        return await super().check(dependency, failed_instance)

    async def check_many(self, requests: Sequence[HealthRequest]) -> list[HealthView]:
        self.batches.append(sorted(r.dependency for r in requests))
        return [await StaticHealth.check(self, r.dependency, r.failed_instance) for r in requests]


def test_a_zone_s_switchovers_are_rechecked_in_one_call(make: Any) -> None:
    h = make()
    health = CountingHealth(candidates={"payments@vm-b1": "healthy", "reports@vm-c1": "healthy"})
    h.worker.health = health
    asyncio.run(h.post(zone_alert()))
    asyncio.run(_work(h))
    assert sorted(r.dependency for r in h.action.requests) == ["payments", "reports"]
    assert health.batches == [["payments", "reports"]] and health.single == []


def test_members_that_leave_or_hang_do_not_hold_the_batch() -> None:
    async def scenario() -> tuple[list[list[str]], float, HealthView]:
        health = CountingHealth()
        batch = HealthBatch(health, gather_max_s=0.3)
        for name in ("a", "b", "c", "d"):
            batch.expect(name)
        batch.seal()
        batch.leave("b")  # settled without a re-check (cooldown, not the primary)
        began = time.monotonic()
        # "d" neither asks nor leaves (following a job from before a restart): the batch waits 0.3 s at most.
        views = await asyncio.gather(batch.check(HealthRequest("a", "a@x")), batch.check(HealthRequest("c", "c@x")))
        waited = time.monotonic() - began
        late = await batch.check(HealthRequest("d", "d@x"))  # after the flush: alone
        assert [v.failed_instance for v in views] == ["unhealthy", "unhealthy"]
        return health.batches, waited, late

    batches, waited, late = asyncio.run(scenario())
    assert batches == [["a", "c"], ["d"]]
    assert 0.25 <= waited < 2.0
    assert late.failed_instance == "unhealthy"


def test_a_checker_that_raises_reaches_every_member() -> None:
    class Broken(CountingHealth):
        async def check_many(self, requests: Sequence[HealthRequest]) -> list[HealthView]:
            raise OSError("prometheus down")

    async def scenario() -> list[BaseException | HealthView]:
        batch = HealthBatch(Broken())
        batch.expect("a")
        batch.expect("b")
        batch.seal()
        return await asyncio.gather(
            batch.check(HealthRequest("a", "a@x")), batch.check(HealthRequest("b", "b@x")), return_exceptions=True
        )

    assert [type(r).__name__ for r in asyncio.run(scenario())] == ["OSError", "OSError"]
