"""What /readyz checks: the store takes a write, and the configured action can start."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from depmirror.runner.store_caller import StoreCaller
from depmirror.store.base import StoreError


class ReadinessChecks:
    def __init__(self, db: StoreCaller, action_problems: Callable[[], Awaitable[list[str]]] | None) -> None:
        self.db = db
        self.action_problems = action_problems
        self._store_check: asyncio.Task[str | None] | None = None

    async def problems(self) -> list[str]:
        # One store check in flight at a time: probes arriving while the store is locked wait on it
        # instead of queueing more work behind the lock.
        if self._store_check is None or self._store_check.done():
            self._store_check = asyncio.ensure_future(self._check_store())
        found: list[str] = []
        if self.action_problems is not None:
            found.extend(await self.action_problems())
        store_problem = await asyncio.shield(self._store_check)
        if store_problem:
            found.insert(0, store_problem)
        return found

    async def _check_store(self) -> str | None:
        try:
            await self.db(self.db.store.check_writable)
        except StoreError as error:
            return f"store not writable: {error}"
        except Exception as error:  # the probe reports; it never raises into the handler
            return f"store unavailable: {type(error).__name__}: {error}"
        return None
