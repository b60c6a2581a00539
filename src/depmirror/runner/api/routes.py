"""Mounting the API on the runner's application (runner/app.py calls `mount`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from depmirror.graph.model import Graph
from depmirror.runner import policy
from depmirror.runner.api import auth, book, dependencies, stats, switchover, targets
from depmirror.runner.api.context import API_KEY, ApiContext
from depmirror.runner.api.openapi import document
from depmirror.runner.config import AuthConfig, RunnerConfig
from depmirror.runner.health import HealthChecker, load_health_checker
from depmirror.runner.metrics import RunnerMetrics
from depmirror.runner.store_caller import StoreCaller

# One history collector per metrics registry: the tests build several apps over one registry.
_COLLECTORS: dict[int, stats.HistoryCollector] = {}


def mount(
    app: web.Application,
    config: RunnerConfig,
    db: StoreCaller,
    metrics: RunnerMetrics,
    wake: Callable[[], None],
    *,
    webhook_ok: Callable[[AuthConfig, str], bool],
    health: HealthChecker | None = None,
    graph: Graph | None = None,
) -> None:
    # The API's own calls are short and share the intake's connection (`db`); the statistics read a month of
    # history, which must not hold up the webhook's 202s: they get a store of their own, opened when first
    # needed (opening it here would make building the app fail while another process locks the store).
    history = stats.HistoryStore(config.store)
    overrides = book.OverrideBook(db, config.runner_id)
    policy.register_book(config, overrides)
    checker = health or load_health_checker(config.health.checker, config.health.options, str(config.path))
    app[API_KEY] = ApiContext(
        config=config, db=db, book=overrides, health=checker, wake=wake, history=history, graph=graph
    )
    app.middlewares.append(auth.middleware(config.auth, metrics, webhook_ok))
    collector = _COLLECTORS.get(id(metrics.registry))
    if collector is None:
        collector = _COLLECTORS[id(metrics.registry)] = stats.HistoryCollector()
        metrics.registry.register(collector)

    async def background(_: web.Application) -> AsyncIterator[None]:
        try:
            async with book.running(overrides), stats.refreshing(collector, history):
                yield
        finally:
            history.close()

    app.cleanup_ctx.append(background)
    router = app.router
    router.add_get("/api/v1/openapi.json", openapi)
    router.add_get("/api/v1/dependencies", dependencies.list_dependencies)
    router.add_get("/api/v1/dependencies/{name}", dependencies.get_dependency)
    router.add_put("/api/v1/dependencies/{name}/policy", dependencies.put_policy)
    router.add_delete("/api/v1/dependencies/{name}/policy", dependencies.delete_policy)
    router.add_post("/api/v1/dependencies/{name}/switchover", switchover.switchover)
    router.add_get("/api/v1/history/stats", stats.history_stats)
    router.add_get("/api/v1/targets", targets.list_targets)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())
