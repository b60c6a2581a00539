"""This runner's lease on one dependency while it handles it (several runners share one store).

The lease is renewed in the background every third of its time; the worker asks `still_held` right before it
journals an action and before it records the outcome, and the fast path asks `held` before promoting state
and before routing. A runner that lost its lease (it stalled, or was cut off from the store) stops at the
next step; the runner that took the lease over finds the action in the journal and decides again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from depmirror.runner.store_caller import StoreCaller

log = logging.getLogger("depmirror.runner")


class DependencyLease:
    def __init__(self, db: StoreCaller, dependency: str, holder: str, token: int, ttl_s: float) -> None:
        self.db = db
        self.dependency = dependency
        self.holder = holder
        self.token = token
        self.ttl_s = ttl_s
        self.lost = False
        self._keeper: asyncio.Task[None] | None = None

    @classmethod
    async def acquire(cls, db: StoreCaller, dependency: str, holder: str, ttl_s: float) -> DependencyLease | None:
        """The lease, or None while another runner holds it."""
        token = await db(db.store.acquire_lease, dependency, holder, ttl_s)
        return None if token is None else cls(db, dependency, holder, token, ttl_s)

    @classmethod
    async def acquire_many(
        cls, db: StoreCaller, dependencies: Sequence[str], holder: str, ttl_s: float
    ) -> dict[str, DependencyLease]:
        """The leases of a dispatch pass, taken in one store transaction (one round trip on the store thread,
        not one per dependency); those another runner holds are left out."""
        if not dependencies:
            return {}
        tokens = await db(db.store.acquire_leases, list(dependencies), holder, ttl_s)
        return {
            name: cls(db, name, holder, token, ttl_s)
            for name in dependencies
            if (token := tokens.get(name)) is not None
        }

    def keep(self) -> None:
        self._keeper = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        while not self.lost:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                token = await self.db(self.db.store.acquire_lease, self.dependency, self.holder, self.ttl_s)
            except Exception as error:  # the store is unreachable: the lease runs out on its own
                log.warning("cannot renew the lease on %s: %s", self.dependency, error)
                continue
            if token != self.token:
                self.lost = True
                log.warning("lost the lease on %s (token %s, now %s)", self.dependency, self.token, token)

    def held(self) -> bool:
        """Asked from an action's thread: still this runner's, right now (the store's clock)."""
        if self.lost:
            return False
        try:
            still = self.db.store.lease_holds(self.dependency, self.holder, self.token)
        except Exception:  # cannot tell: not ours to act on
            still = False
        self.lost = not still
        return still

    async def still_held(self) -> bool:
        if self.lost:
            return False
        try:
            still = await self.db(self.db.store.lease_holds, self.dependency, self.holder, self.token)
        except Exception:
            still = False
        self.lost = not still
        return still

    async def release(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        if not self.lost:
            with contextlib.suppress(Exception):
                await self.db(self.db.store.release_lease, self.dependency, self.holder, self.token)
