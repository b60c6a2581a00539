"""bench/zone_outage.py's pure parts: the graph it deploys, the Redis writer, and the figures it computes.

The graph: the lab's six VMs and lb1 (inventories/example/graph.yml's hosts) with their capacity raised,
CLIENT_HTTP active-active HTTP dependencies and CLIENT_REDIS Redis ones that the clients use, and enough
lightweight fillers (an HTTP or TCP echo in one python3 process each, RF 2, active-passive) to reach the
asked size. Every dependency alerts on one failed probe (`health.samples: 1`, as bench/failover.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from depmirror_lab.shape import HOSTS

CLIENT_HTTP = 6
CLIENT_REDIS = 2
HTTP_PORTS = 8100
TCP_PORTS = 9100
REDIS_PORTS = 6390
_HTTP_ECHO = (
    "python3 -c \"import http.server as h, socket; B = type('B', (h.BaseHTTPRequestHandler,), {'do_GET': "
    "lambda s: (s.send_response(200), s.send_header('Content-Type', 'text/plain'), s.end_headers(), "
    "s.wfile.write(('{port} ' + socket.gethostname()).encode())), 'log_message': lambda *a: None}); "
    "h.ThreadingHTTPServer(('0.0.0.0', {port}), B).serve_forever()\""
)
_TCP_ECHO = (
    'python3 -c "import socketserver as s; s.ThreadingTCPServer.allow_reuse_address = True; '
    "H = type('H', (s.StreamRequestHandler,), {'handle': lambda self: [self.wfile.write(line) for line in "
    "self.rfile]}); s.ThreadingTCPServer(('0.0.0.0', {port}), H).serve_forever()\""
)


def client_http(index: int) -> str:
    return f"web-{index:02d}"


def client_redis(index: int) -> str:
    return f"cache-{index:02d}"


def zone_graph(dependencies: int, *, zone_samples: int = 3) -> dict[str, Any]:
    """The bench's graph with `dependencies` dependencies (at least the clients' 8)."""
    if dependencies < CLIENT_HTTP + CLIENT_REDIS:
        raise ValueError(f"at least {CLIENT_HTTP + CLIENT_REDIS} dependencies (the clients' own), got {dependencies}")
    deps: dict[str, Any] = {}
    for i in range(CLIENT_HTTP):
        deps[client_http(i)] = {
            "tier": i % 3,
            "kind": "http",
            "port": HTTP_PORTS + i,
            "replication": {"min": 2, "max": 3, "mode": "active-active"},
            "cost": 1,
            "deploy": {"health_path": "/", "command": _HTTP_ECHO},
        }
    for i in range(CLIENT_REDIS):
        deps[client_redis(i)] = {
            "tier": 1,
            "kind": "redis",
            "port": REDIS_PORTS + i,
            "replication": {"min": 3, "max": 3},
            "cost": 1,
        }
    for i in range(dependencies - CLIENT_HTTP - CLIENT_REDIS):
        http = i % 2 == 0
        deps[f"fill-{i:03d}"] = {
            "tier": 1 + i % 3,
            "kind": "http" if http else "tcp",
            "port": (HTTP_PORTS + CLIENT_HTTP + i) if http else (TCP_PORTS + i),
            "replication": {"min": 2, "max": 2, "mode": "active-passive"},
            "cost": 1,
            "deploy": {"health_path": "/", "command": _HTTP_ECHO} if http else {"command": _TCP_ECHO},
            "entry": {"rate": 5},  # called from outside the graph: no "nothing calls it" warning
        }
    for item in deps.values():
        item["health"] = {"samples": 1}
    vms = [h for h in HOSTS if h.zone]
    instances = sum(item["replication"]["max"] for item in deps.values())
    minimum = sum(item["replication"]["min"] for item in deps.values())
    per_zone = max(sum(1 for h in vms if h.zone == zone) for zone in {h.zone for h in vms})
    # Room for every instance with a third to spare (the planner spreads them; a zone shift adds none), and
    # for every minimum RF in the zones left when one is shifted: else the zone alert's shift is refused
    # (fleet/zonal_shift.py's capacity check) and only the dependencies' own alerts move them.
    capacity = max(math.ceil(instances * 4 / 3 / len(vms)), math.ceil(minimum / (len(vms) - per_zone)))
    return {
        "version": 1,
        "policy": {
            "cost_budget": dependencies * 10,
            "health": {"unhealthy": 0.5},
            "routing": {
                "max_fails": 2,
                "fail_timeout": "5s",
                "connect_timeout": "1s",
                "read_timeout": "5s",
                "proxy_next_upstream": "error timeout http_502 http_503 http_504",
            },
            "zonal_shift": {"samples": zone_samples},
        },
        "zones": {zone: {} for zone in dict.fromkeys(h.zone for h in vms)},
        "vms": {h.name: {"address": h.address, "zone": h.zone, "capacity": capacity} for h in vms},
        "load_balancers": {h.name: {"address": h.address, "zone": "zone-a"} for h in HOSTS if not h.zone},
        "services": {
            "front": {
                "tier": 0,
                "depends_on": {name: {"rate": 100} for name in list(deps)[: CLIENT_HTTP + CLIENT_REDIS]},
            }
        },
        "dependencies": deps,
    }


def dump(graph: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(graph), sort_keys=False, width=1000)


def percentile(values: Iterable[float], q: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))], 3)


def reloads_by_lb(events: Iterable[Any]) -> dict[str, int]:
    """Reloads each LB did for one outage's switchovers: one per distinct release its events name (a batch
    swaps one release per LB; a batch of one does too)."""
    releases: dict[str, set[str]] = {}
    for event in events:
        for lb, release in (event.details.get("releases") or {}).items():
            releases.setdefault(lb, set()).add(str(release))
    return {lb: len(names) for lb, names in sorted(releases.items())}


def outage_summary(outages: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of bench/results/zone_outage.json over every outage."""
    first = [o["fault_to_first_switched_s"] for o in outages if o["fault_to_first_switched_s"] is not None]
    last = [o["fault_to_last_switched_s"] for o in outages if o["fault_to_last_switched_s"] is not None]
    affected = sum(len(o["affected"]) for o in outages)
    events = sum(sum(o["events_per_dependency"].get(name, 0) for name in o["affected"]) for o in outages)
    return {
        "outages": len(outages),
        "affected_dependencies": affected,
        "switched": sum(len(o["switched"]) for o in outages),
        "fault_to_first_switched_p50_s": percentile(first, 0.5),
        "fault_to_last_switched_p50_s": percentile(last, 0.5),
        "fault_to_last_switched_p99_s": percentile(last, 0.99),
        "fault_to_last_switched_max_s": max(last, default=None),
        "reloads_per_lb_per_outage_max": max((n for o in outages for n in o["reloads"].values()), default=0),
        "events_per_affected_dependency": round(events / affected, 3) if affected else None,
        "unaffected_touched": sum(len(o["unaffected_touched"]) for o in outages),
        "client_errors_active_active": sum(o["client_errors"] for o in outages),
        "client_requests_active_active": sum(o["client_requests"] for o in outages),
        "redis_acked_writes": sum(o["redis_acked"] for o in outages),
        "redis_acked_writes_lost": sum(o["redis_lost"] for o in outages),
        # The zone alert's part (absent from runs before it was loaded in the lab).
        "zone_alert_received_p50_s": percentile(
            [o["zone_alert_received_s"] for o in outages if o.get("zone_alert_received_s") is not None], 0.5
        ),
        "zone_shifts_started": sum(
            1
            for o in outages
            for z in o.get("zone_shift", [])
            if (z["kind"], z["outcome"]) == ("zonal_shift", "succeeded")
        ),
        "switched_by_shift": sum(len(o.get("switched_by_shift", [])) for o in outages),
    }


def gather_passes(arrivals: Iterable[float], window: float, most: float) -> list[tuple[list[float], float]]:
    """Replay the worker's gather (`Worker.gather`) over measured arrival times (seconds): the dispatch passes
    it would make, each with the arrivals it takes and when it dispatches. A pass starts at the first arrival
    the last one left, and dispatches once `window` passes without an arrival, or `most` after it began."""
    pending = sorted(arrivals)
    passes: list[tuple[list[float], float]] = []
    while pending:
        dispatch = pending[0] + most
        for previous, current in zip(pending, [*pending[1:], float("inf")], strict=True):
            if current - previous > window or current > dispatch:
                dispatch = min(dispatch, previous + window)
                break
        taken = [t for t in pending if t <= dispatch]
        passes.append((taken, round(dispatch, 3)))
        pending = pending[len(taken) :]
    return passes


def gather_replay(arrivals: list[float], settings: Iterable[tuple[float, float]]) -> list[dict[str, Any]]:
    """For each (window, max): how many passes (so batches, so reloads per LB) and when the last dispatches."""
    found = []
    for window, most in settings:
        passes = gather_passes(arrivals, window, most)
        found.append(
            {
                "window_s": window,
                "max_s": most,
                "passes": len(passes),
                "sizes": [len(taken) for taken, _ in passes],
                "last_dispatch_s": passes[-1][1] if passes else None,
            }
        )
    return found
