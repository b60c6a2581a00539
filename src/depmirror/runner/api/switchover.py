"""POST /api/v1/dependencies/{name}/switchover: an operator's switchover, or its rehearsal (dry run).

The dry run returns the decision the worker would take now and changes nothing. A real one is queued like
an alert from Alertmanager (a signed fingerprint tells the worker it is an operator's), so the lease, the
fencing, the cooldown and the overrides in force apply to it exactly as to an alert; the answer is 202 with
the decision previewed, and the history records the outcome (GET /api/v1/events)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp import web

from depmirror.fleet.applied import hosts_by_dependency
from depmirror.fleet.history_stats import host_of
from depmirror.runner import policy
from depmirror.runner.api.auth import CALLER_KEY, Caller
from depmirror.runner.api.context import context, error, json_body
from depmirror.runner.health import HealthView
from depmirror.store.model import QueuedAlert, utcnow

HEALTH_TIMEOUT_S = 5.0
MAX_TARGET = 200


async def switchover(request: web.Request) -> web.Response:
    api = context(request)
    name = request.match_info["name"]
    if name not in api.config.dependencies:
        return error(404, "name", f"{name[:60]!r} is not a dependency of this runner")
    body, problem = await json_body(request)
    if problem is not None:
        return problem
    if not isinstance(body, dict):
        return error(400, "body", "must be a JSON object")
    for key in body:
        if key not in ("dry_run", "target"):
            return error(400, str(key)[:40], "unknown field; known: dry_run, target")
    dry_run = body.get("dry_run")
    if not isinstance(dry_run, bool):
        return error(400, "dry_run", "is required: true (rehearse, change nothing) or false")
    target = body.get("target") or ""
    if not isinstance(target, str) or len(target) > MAX_TARGET or not target.isprintable():
        return error(400, "target", f"must be an instance name (HOST or {name}@HOST)")
    store = api.db.store
    primary = await api.db(store.primary, name)
    if primary is None:
        return error(409, "name", f"{name} has no primary recorded yet (run adjust first)")
    if target:
        hosts = await _hosts(request, name)
        if host_of(target) not in hosts or host_of(target) == host_of(primary):
            others = ", ".join(sorted(hosts - {host_of(primary)}))
            return error(400, "target", f"{target[:60]!r} is not another instance of {name} ({others})")
    instance = f"{name}@{host_of(primary)}"
    view = await _health(request, name, instance)
    verdict = policy.preview_switchover(api.book, name, target, view, api.config.policy)
    decision = _decision(name, instance, target, verdict, view, dry_run=dry_run)
    if dry_run or not verdict.act:
        return web.json_response(decision, status=200 if dry_run else 409)
    caller: Caller = request[CALLER_KEY]
    now = utcnow()
    fingerprint = policy.manual_fingerprint(api.config, name, uuid.uuid4().hex, target, caller.name)
    alert = QueuedAlert(
        fingerprint=fingerprint,
        starts_at=now.isoformat(),
        status="firing",
        dependency=name,
        instance=instance,
        labels={
            "alertname": policy.MANUAL_ALERTNAME,
            api.config.dependency_label: name,
            api.config.instance_label: instance,
            policy.TARGET_LABEL: target,
            "requested_by": caller.name,
        },
        annotations={"summary": f"switchover requested by {caller.name} through the API"},
        group_key="api",
        received_at=now,
        not_before=now,
    )
    await api.db(store.enqueue, [alert])
    api.wake()
    return web.json_response({**decision, "queued": True, "fingerprint": fingerprint}, status=202)


async def _hosts(request: web.Request, name: str) -> set[str]:
    api = context(request)
    applied = hosts_by_dependency(await api.db(api.db.store.applied_plan)).get(name)
    return set(applied or api.config.placed.get(name, frozenset()))


async def _health(request: web.Request, name: str, instance: str) -> HealthView:
    policy.use_threshold(context(request).book, name)  # an `unhealthy` override judges, as in the worker
    try:
        return await asyncio.wait_for(context(request).health.check(name, instance), HEALTH_TIMEOUT_S)
    except Exception as problem:  # a broken checker means "unknown", never "healthy"
        return HealthView(failed_instance="unknown", source="error", inputs={"error": type(problem).__name__})


def _decision(
    name: str, instance: str, target: str, verdict: policy.PolicyVerdict, view: HealthView, *, dry_run: bool
) -> dict[str, Any]:
    return {
        "dependency": name,
        "instance": instance,
        "requested_target": target or None,
        "dry_run": dry_run,
        "decision": "act" if verdict.act else "refuse",
        "candidates": list(verdict.candidates),
        "reason": verdict.reason,
        "health": {"source": view.source, "primary": view.failed_instance, "candidates": view.candidates},
    }
