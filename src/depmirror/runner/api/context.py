"""What the API's handlers share: the runner's config, a store connection of their own, the overrides in
force, the health checker and the worker's wake-up (a switchover goes through the queue like an alert)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from depmirror.graph.model import Graph
from depmirror.runner.api.book import OverrideBook
from depmirror.runner.config import RunnerConfig
from depmirror.runner.health import HealthChecker
from depmirror.runner.store_caller import StoreCaller

if TYPE_CHECKING:  # stats imports this module for its handler's context
    from depmirror.runner.api.stats import HistoryStore


@dataclass(frozen=True, slots=True)
class ApiContext:
    config: RunnerConfig
    db: StoreCaller
    book: OverrideBook
    health: HealthChecker
    wake: Callable[[], None]
    history: HistoryStore  # the statistics' own store connection
    graph: Graph | None = None  # the runner's graph (`graph:`), which labels the probe targets


API_KEY = web.AppKey("depmirror_api", ApiContext)


def context(request: web.Request) -> ApiContext:
    return request.app[API_KEY]


def error(status: int, field: str, problem: str, **extra: Any) -> web.Response:
    """A 4xx that names the field at fault; nothing was changed."""
    return web.json_response({"error": f"{field}: {problem}", "field": field, **extra}, status=status)


async def json_body(request: web.Request, *, required: bool = True) -> tuple[Any, web.Response | None]:
    """The request's JSON body, or the 400 that says why there is none."""
    raw = await request.read()
    if not raw.strip():
        if required:
            return None, error(400, "body", "a JSON object is required")
        return {}, None
    try:
        return json.loads(raw), None
    except (ValueError, UnicodeDecodeError) as problem:
        return None, error(400, "body", f"not valid JSON: {str(problem)[:120]}")
