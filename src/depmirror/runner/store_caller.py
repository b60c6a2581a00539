"""Blocking store calls from the event loop: one thread per caller, so the loop never waits on an fsync."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from depmirror.store.base import Store

T = TypeVar("T")


class StoreCaller:
    """Runs blocking store calls on one thread, so the event loop never waits on an fsync."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="depmirror-store")

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)
