"""GET /api/v1/targets: the probe targets of what runs now, in Prometheus's HTTP service discovery format.

Prometheus polls it (`http_sd_configs`, docs/health.md "Targets from the runner"); the answer is built from
the store's applied plan and primaries on every call, so it follows reconciliation and switchovers without a
file to copy. A runner without a graph cannot label the targets (zone, kind, address) and says so.
"""

from __future__ import annotations

import logging

from aiohttp import web

from depmirror.fleet.probe_targets import probe_targets
from depmirror.runner.api.context import context, error

log = logging.getLogger(__name__)


async def list_targets(request: web.Request) -> web.Response:
    api = context(request)
    if api.graph is None:
        return error(
            409, "graph", "this runner's config names no graph file, so it cannot label the targets (fix: set graph:)"
        )
    store = api.db.store
    record = await api.db(store.applied_plan)
    primaries = await api.db(store.primaries)
    groups, left_out = probe_targets(api.graph, record, primaries)
    if left_out:
        # Not an error for Prometheus: it would keep probing yesterday's targets. The next adjust removes them.
        log.warning("targets: %d applied instance(s) not in the graph, not probed: %s", len(left_out), left_out[:5])
    return web.json_response(groups, headers={"X-Depmirror-Left-Out": str(len(left_out))})
