"""The controller's side of `rollback.yml` and `failback.yml`: what runs now, who takes over, what to route.

The playbooks do the remote steps (promote, repoint, fence, route); every decision is taken here, from the
state store (the applied plan and the primaries) and live health from Prometheus, so that a person, AWX
and the runner get the same answer. The results are plain JSON-able dicts for Ansible.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from depmirror.errors import DepmirrorError
from depmirror.fleet.applied import plan_of, with_dependency
from depmirror.fleet.rollback_history import record_event
from depmirror.graph.load import load_graph
from depmirror.graph.model import Graph
from depmirror.health.evaluate import fetch_health
from depmirror.rollback.decide import (
    STANDBY_ROLE,
    RollbackDecision,
    RollbackRefused,
    choose_target,
    switched,
    with_primary,
)
from depmirror.store import EventFilter, open_store


class FlowError(DepmirrorError):
    """The inputs do not describe a switchover that can be decided (unknown dependency, no applied plan)."""


@dataclass(frozen=True, slots=True)
class Health:
    """Live health per host of one dependency; `verdicts` keeps what Prometheus said, for the history."""

    scores: Mapping[str, float | None]
    excluded: Mapping[str, str]
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    states: Mapping[str, str] = field(default_factory=dict)


def host_of(dependency: str, instance: str) -> str:
    """Alerts and the runner name an instance `dependency@host`; people and the store use the host."""
    prefix = f"{dependency}@"
    return instance[len(prefix) :] if instance.startswith(prefix) else instance


def running_dependencies(store_url: str) -> list[dict[str, Any]]:
    """What the load balancers route now: the applied plan, with the primaries the store records."""
    with open_store(store_url) as store:
        applied = store.applied_plan()
        primaries = store.primaries()
    if not plan_of(applied).get("dependencies"):
        raise FlowError(
            f"the state store {store_url} holds no applied plan "
            "(fix: run playbooks/adjust.yml with depmirror_state_store set to this store first)"
        )
    return [_with_primary(item, primaries.get(item["name"])) for item in plan_of(applied)["dependencies"]]


def _with_primary(item: dict[str, Any], primary: str | None) -> dict[str, Any]:
    hosts = {i["host"]: i for i in item.get("instances", [])}
    if primary is None or primary not in hosts or (item.get("primary") or {}).get("host") == primary:
        return item
    chosen = hosts[primary]
    return with_primary(item, primary, address=chosen["address"], port=chosen.get("port", item["port"]))


def live_health(
    graph: Graph,
    dependency: str,
    url: str | None,
    *,
    token: str | None = None,
    timeout: float = 2.0,
    interval: float = 5.0,
) -> Health:
    """Verdicts of one dependency's instances. No Prometheus: every instance is unknown, never a target."""
    if not url:
        return Health({}, {}, [], ["no Prometheus URL: health is unknown, so no instance can be a target"])
    report = fetch_health(graph, url, None, token=token, timeout=timeout, interval=interval, dependencies={dependency})
    scores: dict[str, float | None] = {}
    excluded: dict[str, str] = {}
    states: dict[str, str] = {}
    for verdict in report.verdicts:
        states[verdict.host] = verdict.state
        scores[verdict.host] = None if verdict.state == "unknown" else verdict.score
        if verdict.state == "degraded":
            # A target must be healthy now, not recovering or sliding: the runner's checker says the same.
            excluded[verdict.host] = f"degraded ({verdict.reason})"
    return Health(scores, excluded, [v.to_dict() for v in report.verdicts], list(report.warnings), states)


def with_health(item: dict[str, Any], health: Health) -> dict[str, Any]:
    after = copy.deepcopy(item)
    for instance in after.get("instances", []):
        instance["health"] = health.scores.get(instance["host"])
    return after


def lag_exclusions(offsets: Mapping[str, int], max_lag: int) -> dict[str, str]:
    """Replicas further behind the most advanced one than `max_lag` bytes may not be promoted.

    With the primary gone, the most advanced survivor holds every write any replica acknowledged.
    """
    if not offsets:
        return {}
    best_host, best = max(offsets.items(), key=lambda kv: (kv[1], kv[0]))
    return {
        host: f"replication offset {offset} is {best - offset} bytes behind {best_host} (max lag {max_lag})"
        for host, offset in offsets.items()
        if best - offset > max_lag
    }


def replication_offset(info: str | int) -> int | None:
    """The offset in `INFO replication`: what a replica has processed, or what a primary has written."""
    if isinstance(info, int) or str(info).strip().isdigit():
        return int(info)
    fields = dict(line.split(":", 1) for line in str(info).splitlines() if ":" in line)
    raw = fields.get("slave_repl_offset") if fields.get("role") == "slave" else fields.get("master_repl_offset")
    return int(raw) if raw is not None and raw.strip().lstrip("-").isdigit() else None


def offsets_of(infos: Mapping[str, str | int]) -> dict[str, int]:
    found = {host: replication_offset(info) for host, info in infos.items()}
    return {host: offset for host, offset in found.items() if offset is not None}


def _find(dependencies: Iterable[dict[str, Any]], name: str) -> dict[str, Any]:
    found = {item["name"]: item for item in dependencies}
    if name not in found:
        raise FlowError(f"unknown dependency {name!r} (the applied plan has: {', '.join(sorted(found))})")
    return found[name]


def _instance(item: dict[str, Any], host: str) -> dict[str, Any]:
    for instance in item.get("instances", []):
        if instance["host"] == host:
            return {k: instance.get(k) for k in ("host", "zone", "address", "port", "role")}
    hosts = ", ".join(i["host"] for i in item.get("instances", []))
    raise FlowError(f"{host} runs no instance of {item['name']} (its instances: {hosts or 'none'})")


def _replace(dependencies: list[dict[str, Any]], after: dict[str, Any]) -> list[dict[str, Any]]:
    return [after if item["name"] == after["name"] else item for item in dependencies]


def prepare_rollback(
    dependencies: list[dict[str, Any]],
    dependency: str,
    failed_instance: str,
    health: Health,
    *,
    unhealthy_below: float,
    candidates: Collection[str] = (),
    offsets: Mapping[str, int] | None = None,
    max_lag: int = 0,
) -> dict[str, Any]:
    """The switchover as the playbook carries it out. Raises RollbackRefused when nothing may take over."""
    item = _find(dependencies, dependency)
    failed = host_of(dependency, failed_instance)
    failed_instance_vars = _instance(item, failed)
    primary = (item.get("primary") or {}).get("host")
    only = {host_of(dependency, c) for c in candidates} or None
    lagging = lag_exclusions(offsets or {}, max_lag)
    live = with_health(item, health)
    if primary != failed:
        # A failing mirror is the planner's business (adjust), not a switchover.
        candidates_seen = choose_target_safely(live, failed, unhealthy_below)
        reason = f"{failed} is not the primary of {dependency} ({primary} is): nothing to switch over"
        raise RollbackRefused(RollbackDecision(dependency, failed, None, candidates_seen, reason))
    decision = choose_target(live, failed, unhealthy_below, only=only, excluded={**health.excluded, **lagging})
    assert decision.target is not None  # choose_target raises instead of returning no target
    after = switched(live, decision)
    target = _instance(item, decision.target.host)
    survivors = [i["host"] for i in item["instances"] if i["host"] != failed]
    return {
        "dependency": dependency,
        "kind": item.get("kind"),
        "mode": item.get("mode"),
        "port": item.get("port"),
        "failed": failed_instance_vars,
        "target": target,
        "survivors": survivors,
        "replicas": [h for h in survivors if h != target["host"]],
        "decision": decision.to_dict(),
        "reason": decision.reason,
        "after": after,
        "dependencies": _replace(dependencies, after),
        "inputs": inputs_of(health, offsets, max_lag, unhealthy_below, sorted(only) if only else None),
    }


def choose_target_safely(item: dict[str, Any], failed: str, unhealthy_below: float) -> tuple[Any, ...]:
    """The candidates as choose_target sees them, whether or not one is eligible (for a refusal's record)."""
    try:
        return choose_target(item, failed, unhealthy_below).candidates
    except RollbackRefused as refused:
        return refused.decision.candidates


def inputs_of(
    health: Health,
    offsets: Mapping[str, int] | None,
    max_lag: int,
    unhealthy_below: float,
    only: list[str] | None,
) -> dict[str, Any]:
    inputs: dict[str, Any] = {
        "health": {host: {"score": score, "verdict": health.states.get(host)} for host, score in health.scores.items()},
        "verdicts": health.verdicts,
        "unhealthy_below": unhealthy_below,
    }
    if health.warnings:
        inputs["warnings"] = health.warnings
    if offsets:
        inputs["replication_offsets"] = dict(offsets)
        inputs["max_lag_bytes"] = max_lag
    if only is not None:
        inputs["verified_candidates"] = only
    return inputs


def prepare_failback(
    dependencies: list[dict[str, Any]],
    graph: Graph,
    dependency: str,
    recovered_instance: str,
    health: Health,
    *,
    store_url: str,
    hold_s: float,
    move_primary_back: bool,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Bring a recovered instance back as a mirror (and, if asked, primary). Raises FailbackRefused."""
    item = _find(dependencies, dependency)
    recovered = host_of(dependency, recovered_instance)
    primary = _instance(item, (item.get("primary") or {}).get("host") or "")
    if recovered == primary["host"]:
        raise FailbackRefused(f"{recovered} is already the primary of {dependency}: nothing to fail back")
    if item.get("kind") == "postgresql" or item.get("stateful_commands"):
        # Started again as it was fenced, the old primary would accept writes on its old timeline beside the
        # promoted one; it has to come back as a new standby built from the current primary.
        engine = "postgresql" if item.get("kind") == "postgresql" else "stateful"
        raise FailbackRefused(
            f"{dependency} is a {engine} dependency: its fenced primary on {recovered} "
            "is not started again by a failback; run adjust (adjust.yml or depmirror pyinfra adjust), "
            "which rebuilds it as a standby of the current primary"
        )
    vm = graph.vms.get(recovered)
    if vm is None:
        raise FlowError(f"{recovered} is not a VM of the graph {graph.source}")
    state = health.states.get(recovered, "unknown")
    if state != "healthy":
        # Unknown is not enough: a failback moves data and traffic onto the instance.
        raise FailbackRefused(f"{recovered} is {state}, not healthy: it stays out of {dependency}")
    left = _hold_left(store_url, dependency, recovered, hold_s, now or datetime.now(UTC))
    if left > 0:
        raise FailbackRefused(
            f"{recovered} failed over {hold_s - left:.0f} s ago; the hold time is {hold_s:.0f} s ({left:.0f} s left)"
        )
    standby = STANDBY_ROLE.get(item.get("mode", ""), "mirror")
    after = with_health(item, health)
    after["instances"] = [i for i in after["instances"] if i["host"] != recovered]
    after["instances"].append(
        {
            "host": recovered,
            "zone": vm.zone,
            "address": vm.address,
            "port": item["port"],
            "role": standby,
            "health": health.scores.get(recovered),
        }
    )
    recovered_vars = {"host": recovered, "zone": vm.zone, "address": vm.address, "port": item["port"]}
    new_primary = primary
    if move_primary_back:
        after = with_primary(after, recovered, address=vm.address, port=item["port"])
        new_primary = {**recovered_vars, "role": "primary"}
    moved = "and takes the primary role back" if move_primary_back else f"as {standby} of {primary['host']}"
    return {
        "dependency": dependency,
        "kind": item.get("kind"),
        "mode": item.get("mode"),
        "port": item.get("port"),
        "primary": primary,
        "recovered": recovered_vars,
        "new_primary": new_primary,
        "move_primary_back": move_primary_back,
        "replicas": [i["host"] for i in after["instances"] if i["host"] not in (recovered, primary["host"])],
        "reason": (
            f"{recovered} is healthy again (score {health.scores.get(recovered)}) and rejoins {dependency} {moved}"
        ),
        "after": after,
        "dependencies": _replace(dependencies, after),
        "inputs": inputs_of(health, None, 0, 0.0, None),
    }


class FailbackRefused(DepmirrorError):
    """The recovered instance may not come back yet; nothing was changed."""


def _hold_left(store_url: str, dependency: str, host: str, hold_s: float, now: datetime) -> float:
    with open_store(store_url) as store:
        events = store.events(EventFilter(dependency=dependency, kinds=("rollback",), limit=50))
    for event in events:  # newest first
        if event.outcome == "succeeded" and event.instance and host_of(dependency, event.instance) == host:
            return max(0.0, hold_s - (now - event.time).total_seconds())
    return 0.0


def record_routing(store_url: str, after: dict[str, Any]) -> None:
    """Make the applied plan say what the load balancers now route for one dependency.

    Without this, the next switchover of another dependency would re-render this one from the plan that
    adjust applied, and put a fenced instance back into its upstream. The planner's state is left alone.
    """
    with open_store(store_url) as store:
        store.set_applied_plan(with_dependency(store.applied_plan(), after))


def elapsed(started: float) -> float:
    return round(time.time() - started, 3)


@dataclass(frozen=True, slots=True)
class SwitchoverRequest:
    """What a playbook asks: the names as the runner passes them (`depmirror_*` extra vars)."""

    graph: str
    store: str
    dependency: str
    instance: str
    prometheus_url: str | None = None
    prometheus_token: str | None = None
    prometheus_timeout: float = 2.0
    health_interval: float = 5.0
    unhealthy_below: float | None = None
    candidates: tuple[str, ...] = ()
    offsets: Mapping[str, int] | None = None
    max_lag: int = 0
    trigger: Mapping[str, Any] = field(default_factory=dict)
    action_id: str | None = None


def _live_inputs(request: SwitchoverRequest) -> tuple[Graph, list[dict[str, Any]], Health]:
    """What a switchover or a failback decides from: the graph, what the LBs route now, live health."""
    graph = load_graph(request.graph)
    dependencies = running_dependencies(request.store)
    health = live_health(
        graph,
        request.dependency,
        request.prometheus_url,
        token=request.prometheus_token,
        timeout=request.prometheus_timeout,
        interval=request.health_interval,
    )
    return graph, dependencies, health


def decide_rollback(request: SwitchoverRequest, *, record_refusal: bool = True) -> dict[str, Any]:
    """The switchover, or RollbackRefused after appending a `refused` event (nothing else changed)."""
    started = time.time()
    graph, dependencies, health = _live_inputs(request)
    threshold = graph.policy.health.unhealthy if request.unhealthy_below is None else request.unhealthy_below
    try:
        decided = prepare_rollback(
            dependencies,
            request.dependency,
            request.instance,
            health,
            unhealthy_below=threshold,
            candidates=request.candidates,
            offsets=request.offsets,
            max_lag=request.max_lag,
        )
    except RollbackRefused as refused:
        if record_refusal:
            _record_refusal(
                request,
                "rollback",
                refused.decision.reason,
                started,
                {
                    "decision": refused.decision.to_dict(),
                    "inputs": inputs_of(
                        health, request.offsets, request.max_lag, threshold, list(request.candidates) or None
                    ),
                },
            )
        raise
    decided["started"] = started
    return decided


def decide_failback(
    request: SwitchoverRequest, *, hold_s: float, move_primary_back: bool, record_refusal: bool = True
) -> dict[str, Any]:
    """The failback, or FailbackRefused after appending a `refused` event (nothing else changed)."""
    started = time.time()
    graph, dependencies, health = _live_inputs(request)
    try:
        decided = prepare_failback(
            dependencies,
            graph,
            request.dependency,
            request.instance,
            health,
            store_url=request.store,
            hold_s=hold_s,
            move_primary_back=move_primary_back,
        )
    except FailbackRefused as refused:
        if record_refusal:
            _record_refusal(
                request,
                "failback",
                str(refused),
                started,
                {
                    "inputs": inputs_of(health, None, 0, 0.0, None),
                },
            )
        raise
    decided["started"] = started
    return decided


def _record_refusal(
    request: SwitchoverRequest, action: str, reason: str, started: float, extra: dict[str, Any]
) -> None:
    record_event(
        request.store,
        {
            "kind": "refused",
            "dependency": request.dependency,
            "outcome": "refused",
            "instance": host_of(request.dependency, request.instance),
            "action": action,
            "trigger": dict(request.trigger),
            "inputs": extra.get("inputs", {}),
            "decision": "refuse",
            "reason": reason,
            "duration_s": elapsed(started),
            "details": {
                k: v
                for k, v in {
                    "decision": extra.get("decision"),
                    "action_id": request.action_id,
                    "playbook": f"{action}.yml",
                }.items()
                if v is not None
            },
        },
    )
