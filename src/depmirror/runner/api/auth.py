"""Who may call the API: bearer tokens with scopes (`read` < `operate` < `admin`), compared in constant time.

401 without credentials the runner knows, 403 with credentials that lack the route's scope. The webhook's
own credentials (auth.token or basic) read, as they always could (`GET /api/v1/events`); they never change
anything. With `auth.type: none` (loopback only) and no `api_tokens`, every scope is open to local callers.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from depmirror.runner.api.scopes import SCOPES, granted
from depmirror.runner.config import AuthConfig
from depmirror.runner.metrics import RunnerMetrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API_PREFIX = "/api/"
# The scope each route needs; a path under /api/ not listed here (a 404) still needs `read`, so that an
# unauthenticated caller learns nothing, not even which paths exist.
ROUTE_SCOPES = {
    ("PUT", "/api/v1/dependencies/{name}/policy"): "admin",
    ("DELETE", "/api/v1/dependencies/{name}/policy"): "admin",
    ("POST", "/api/v1/dependencies/{name}/switchover"): "operate",
}


@dataclass(frozen=True, slots=True)
class Caller:
    name: str
    scopes: frozenset[str]


CALLER_KEY = web.RequestKey("depmirror_caller", Caller)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def identify(auth: AuthConfig, header: str, webhook_ok: Callable[[AuthConfig, str], bool]) -> Caller | None:
    """The caller an Authorization header names, or None. Every token is compared (no early exit), so the
    time taken does not tell which token came close."""
    scheme, _, credentials = header.partition(" ")
    found: Caller | None = None
    if scheme.lower() == "bearer":
        given = credentials.strip()
        for token in auth.api_tokens:
            if _same(given, token.token) and found is None:
                found = Caller(token.name, granted(token.scopes))
    if found is None and auth.type != "none" and webhook_ok(auth, header):
        found = Caller("webhook", frozenset({"read"}))
    if found is None and auth.type == "none" and not auth.api_tokens:
        found = Caller("local", frozenset(SCOPES))
    return found


def needed_scope(request: web.Request) -> str:
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else request.path
    return ROUTE_SCOPES.get((request.method, canonical), "read")


def middleware(auth: AuthConfig, metrics: RunnerMetrics, webhook_ok: Callable[[AuthConfig, str], bool]) -> Any:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        caller = identify(auth, request.headers.get("Authorization", ""), webhook_ok)
        if caller is None:
            metrics.requests_rejected.labels("401").inc()
            return web.json_response(
                {"error": "missing or wrong credentials"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="depmirror"'},
            )
        scope = needed_scope(request)
        if scope not in caller.scopes:
            metrics.requests_rejected.labels("403").inc()
            return web.json_response(
                {"error": f"this needs the {scope!r} scope; the token of {caller.name!r} has {sorted(caller.scopes)}"},
                status=403,
            )
        request[CALLER_KEY] = caller
        return await handler(request)

    return check
