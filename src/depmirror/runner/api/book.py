"""The overrides in force, as the runner's decisions read them: a copy of the store's active overrides,
refreshed in the background (and at once after the API changes one), so that a decision never waits on the
store for them. Refreshing also records the ones that expired as ended (an `override_end` event)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from depmirror.fleet.overrides import effective, end_expired
from depmirror.runner.store_caller import StoreCaller
from depmirror.store.model import Override, utcnow

log = logging.getLogger("depmirror.runner")
# How stale a runner's view of the overrides may be: another runner's change (or an expiry) reaches this
# one's decisions within this. The API's own changes apply at once.
REFRESH_S = 1.0


class OverrideBook:
    def __init__(self, db: StoreCaller, runner_id: str) -> None:
        self.db = db
        self.runner_id = runner_id
        self.active: tuple[Override, ...] = ()
        self.loaded = False

    def settings(self, dependency: str, now: datetime | None = None) -> dict[str, Any]:
        """The settings in force for `dependency`, each as (value, override); expired ones are not."""
        return effective(self.active, dependency, now or utcnow())

    async def refresh(self) -> None:
        now = utcnow()
        ended = await self.db(lambda: end_expired(self.db.store, now, by=f"runner {self.runner_id}"))
        for override in ended:
            log.info("override #%s of %s expired at %s", override.id, override.dependency, override.expires_ts)
        self.active = tuple(await self.db(self.db.store.overrides, now))
        self.loaded = True

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception:  # the store may be down for a while; the last copy stays in force
                log.warning("cannot refresh the overrides; keeping the last ones read", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REFRESH_S)


@contextlib.asynccontextmanager
async def running(book: OverrideBook) -> AsyncIterator[None]:
    # Read once before the runner serves anything: a request or an alert decided before the first refresh
    # would not see a `frozen` override (a switchover right after a restart went through one).
    try:
        await book.refresh()
    except Exception:  # the store down at start: the loop below keeps trying, as it does later
        log.warning("cannot read the overrides at start; retrying every %.0fs", REFRESH_S, exc_info=True)
    stop = asyncio.Event()
    task = asyncio.create_task(book.run(stop))
    try:
        yield
    finally:
        stop.set()
        await task
