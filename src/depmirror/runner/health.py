"""The health re-check the runner does before acting, behind a small interface.

The Prometheus-backed checker lives with the health library; the runner only knows this protocol, and
loads a checker named in its config as `module.path:factory` (factory(options) -> HealthChecker).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Sequence
from typing import Any, Protocol

from depmirror.errors import ConfigError
from depmirror.health.checker import HealthRequest
from depmirror.health.view import HealthView, TargetHealth

__all__ = [
    "BatchHealthChecker",
    "HealthBatch",
    "HealthChecker",
    "HealthRequest",
    "HealthView",
    "TargetHealth",
    "UnknownHealthChecker",
    "load_health_checker",
]
# How long a pass's re-checks wait, once the pass is sealed, for members that neither ask nor leave (one
# following a job started before a restart): the batch never waits on an action.
GATHER_MAX_S = 0.5


class HealthChecker(Protocol):
    async def check(self, dependency: str, failed_instance: str) -> HealthView: ...


class BatchHealthChecker(HealthChecker, Protocol):
    async def check_many(self, requests: Sequence[HealthRequest]) -> list[HealthView]:
        """One view per request, in order, from one call (one question to Prometheus for the batch)."""
        ...


class HealthBatch:
    """Gathers the re-checks of one dispatch pass into one `check_many` (docs/rollback.md, "Batches").

    As the rollbacks' BatchGate: every dependency of the pass is `expect`ed; once the pass is `seal`ed and
    each has asked or `leave`s (settled without a re-check), one call answers them all. A re-check asked
    after that runs alone; members that do neither are waited for at most GATHER_MAX_S after the seal."""

    def __init__(self, checker: BatchHealthChecker, gather_max_s: float = GATHER_MAX_S) -> None:
        self.checker = checker
        self.gather_max_s = gather_max_s
        self.calls = 0  # check_many calls made (one per pass, unless some asked late)
        self._expected: set[str] = set()
        self._waiting: dict[str, tuple[HealthRequest, asyncio.Future[HealthView]]] = {}
        self._sealed = False
        self._flushed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def expect(self, dependency: str) -> None:
        self._expected.add(dependency)

    def seal(self) -> None:
        self._sealed = True
        self._timer = asyncio.get_running_loop().call_later(self.gather_max_s, self._flush_now)
        self._maybe_flush()

    def leave(self, dependency: str) -> None:
        if dependency not in self._waiting:
            self._expected.discard(dependency)
            self._maybe_flush()

    async def check(self, request: HealthRequest) -> HealthView:
        if self._flushed or request.dependency not in self._expected or request.dependency in self._waiting:
            self.calls += 1
            return (await self.checker.check_many([request]))[0]
        future: asyncio.Future[HealthView] = asyncio.get_running_loop().create_future()
        self._waiting[request.dependency] = (request, future)
        self._maybe_flush()
        return await future

    def _maybe_flush(self) -> None:
        if self._sealed and self._expected <= set(self._waiting):
            self._flush_now()

    def _flush_now(self) -> None:
        if self._flushed:
            return
        self._flushed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._waiting:
            self.calls += 1
            task = asyncio.get_running_loop().create_task(self._flush(list(self._waiting.values())))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush(self, waiting: list[tuple[HealthRequest, asyncio.Future[HealthView]]]) -> None:
        try:
            views = await self.checker.check_many([request for request, _ in waiting])
        except Exception as error:  # each member turns it into "unknown", as for its own re-check
            for _, future in waiting:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), view in zip(waiting, views, strict=True):
            if not future.done():
                future.set_result(view)


class UnknownHealthChecker:
    """The default: knows nothing, so every verdict is unknown (and the runner refuses by default)."""

    async def check(self, dependency: str, failed_instance: str) -> HealthView:
        return HealthView(failed_instance="unknown", source="none")


def load_health_checker(spec: str, options: dict[str, Any], config_file: str) -> HealthChecker:
    if spec == "none":
        return UnknownHealthChecker()
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ConfigError(
            config_file,
            "health.checker",
            f"cannot load {spec}: {error}",
            "use none or an importable module.path:factory",
        ) from error
    checker: HealthChecker = factory(options)
    return checker
