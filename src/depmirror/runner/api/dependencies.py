"""GET /api/v1/dependencies[/{name}] and PUT/DELETE /api/v1/dependencies/{name}/policy (the overrides)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from depmirror.fleet.applied import plan_of
from depmirror.fleet.overrides import OverrideError, effective, end_event, parse_request, set_event
from depmirror.runner.api.auth import CALLER_KEY, Caller
from depmirror.runner.api.context import context, error, json_body
from depmirror.store import EVERY_DEPENDENCY, Override
from depmirror.store.model import utcnow

HEALTH_TIMEOUT_S = 5.0
MAX_CLEAR_REASON = 500


def _known(request: web.Request, name: str, *, every: bool = False) -> web.Response | None:
    api = context(request)
    if name in api.config.dependencies or (every and name == EVERY_DEPENDENCY):
        return None
    shown = name if len(name) <= 60 else name[:57] + "..."
    return error(404, "name", f"{shown!r} is not a dependency of this runner")


def _overrides_of(active: list[Override], name: str) -> list[dict[str, Any]]:
    return [o.as_dict() for o in active if o.dependency in (name, EVERY_DEPENDENCY)]


async def _snapshot(request: web.Request) -> tuple[dict[str, dict[str, Any]], dict[str, str], list[Override]]:
    api = context(request)
    store = api.db.store
    record = await api.db(store.applied_plan)
    primaries = await api.db(store.primaries)
    active = await api.db(store.overrides, utcnow())
    items = {str(item.get("name")): item for item in plan_of(record).get("dependencies") or []}
    return items, primaries, active


def _summary(name: str, item: dict[str, Any] | None, primary: str | None, active: list[Override]) -> dict[str, Any]:
    rollback, _ = effective(active, name, utcnow()).get("rollback", ("auto", None))
    return {
        "name": name,
        "primary": primary or ((item or {}).get("primary") or {}).get("host"),
        "replication_factor": (item or {}).get("replication_factor"),
        "mode": (item or {}).get("mode"),
        "instances": [i.get("host") for i in (item or {}).get("instances", [])],
        "rollback": rollback,
        "overrides": [o.id for o in active if _applies(o, name)],
    }


def _applies(override: Override, name: str) -> bool:
    return override.dependency in (name, EVERY_DEPENDENCY)


async def list_dependencies(request: web.Request) -> web.Response:
    items, primaries, active = await _snapshot(request)
    names = sorted(context(request).config.dependencies)
    return web.json_response(
        {"dependencies": [_summary(name, items.get(name), primaries.get(name), active) for name in names]}
    )


async def get_dependency(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    unknown = _known(request, name)
    if unknown is not None:
        return unknown
    api = context(request)
    items, primaries, active = await _snapshot(request)
    summary = _summary(name, items.get(name), primaries.get(name), active)
    health: dict[str, Any] = {"source": "none", "primary": "unknown", "candidates": {}}
    if summary["primary"]:
        try:
            view = await asyncio.wait_for(api.health.check(name, f"{name}@{summary['primary']}"), HEALTH_TIMEOUT_S)
            health = {"source": view.source, "primary": view.failed_instance, "candidates": view.candidates}
        except Exception as problem:  # a broken checker means "unknown", never an error page
            health = {"source": "error", "primary": "unknown", "candidates": {}, "error": type(problem).__name__}
    return web.json_response(
        {
            **summary,
            "plan": items.get(name),
            "health": health,
            "active_overrides": _overrides_of(active, name),
            "effective": {k: {"value": v, "override": o.id} for k, (v, o) in effective(active, name, utcnow()).items()},
        }
    )


async def put_policy(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    unknown = _known(request, name, every=True)
    if unknown is not None:
        return unknown
    body, problem = await json_body(request)
    if problem is not None:
        return problem
    api = context(request)
    caller: Caller = request[CALLER_KEY]
    try:
        override = parse_request(name, body, known=api.config.dependencies, created_by=caller.name, now=utcnow())
    except OverrideError as bad:
        return error(400, bad.field, bad.problem)
    stored = await api.db(lambda: api.db.store.set_override(override, event=set_event))
    await api.book.refresh()
    return web.json_response({"override": stored.as_dict()})


async def delete_policy(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    unknown = _known(request, name, every=True)
    if unknown is not None:
        return unknown
    body, problem = await json_body(request, required=False)
    if problem is not None:
        return problem
    if not isinstance(body, dict):
        return error(400, "body", "must be a JSON object")
    reason = body.get("reason", "cleared")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_CLEAR_REASON or not reason.isprintable():
        return error(400, "reason", f"must be 1..{MAX_CLEAR_REASON} printable characters")
    extra = sorted(str(key)[:40] for key in body if key != "reason")
    if extra:
        return error(400, extra[0], "unknown field; known: reason")
    api = context(request)
    caller: Caller = request[CALLER_KEY]
    ended = await api.db(
        lambda: api.db.store.end_override(
            name,
            ended_ts=utcnow(),
            end_reason=f"cleared by {caller.name}: {reason.strip()}",
            event=lambda o: end_event(o, by=caller.name),
        )
    )
    await api.book.refresh()
    if ended is None:
        return error(404, "name", f"{name!r} has no override in force")
    return web.json_response({"override": ended.as_dict()})
