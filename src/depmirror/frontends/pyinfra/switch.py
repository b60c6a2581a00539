"""playbooks/rollback.yml and failback.yml over pyinfra: the library decides, pyinfra carries it out.

The phases, decisions (`rollback.flow.decide_rollback` / `decide_failback`, refusals recorded there),
traffic checks (`rollback.traffic_check`) and events (`fleet.rollback_history.record_event`,
`rollback.flow.record_routing`) are the playbooks'. A phase that fails after the decision is recorded as a
`failed` event naming the phase, and nothing is undone, as roles/rollback/tasks/failed.yml does.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyinfra.api import State
from pyinfra.operations import server, systemd

from depmirror.errors import ConfigError, DepmirrorError
from depmirror.fleet.rollback_history import record_event
from depmirror.frontends.pyinfra.adjust import route_release
from depmirror.frontends.pyinfra.collection import Collection
from depmirror.frontends.pyinfra.engine import Added, PhaseFailed, PhaseOptions, PhaseResult, add, prefetch, run_phase
from depmirror.frontends.pyinfra.facts import RedisReplication
from depmirror.frontends.pyinfra.inventory import Connection
from depmirror.frontends.pyinfra.operations import unit_name
from depmirror.frontends.pyinfra.source import FleetSource
from depmirror.graph.load import load_graph
from depmirror.graph.model import Graph
from depmirror.rollback.decide import RollbackRefused
from depmirror.rollback.flow import (
    FailbackRefused,
    SwitchoverRequest,
    decide_failback,
    decide_rollback,
    elapsed,
    offsets_of,
    record_routing,
)
from depmirror.rollback.nginx import NginxOptions, render_release
from depmirror.rollback.traffic_check import check_traffic
from depmirror.views.inventory import inventory_document

PROMETHEUS_TIMEOUT_S = 2.0  # roles/rollback/defaults: rollback_prometheus_timeout
REDIS_SYNC_TIMEOUT_S = 30  # rollback_redis_sync_timeout


@dataclass(frozen=True, slots=True)
class RollbackArgs:
    dependency: str
    failed_instance: str
    candidates: tuple[str, ...] = ()
    trigger: Mapping[str, Any] = field(default_factory=lambda: {"type": "user"})
    action_id: str = ""
    health_interval: float = 5.0
    max_lag: int = 0
    verify_requests: int = 10
    verify_deadline: float = 3.0
    fence_timeout: float = 3.0


@dataclass(frozen=True, slots=True)
class FailbackArgs:
    dependency: str
    recovered_instance: str
    trigger: Mapping[str, Any] = field(default_factory=lambda: {"type": "user"})
    action_id: str = ""
    health_interval: float = 5.0
    hold_seconds: float = 300.0
    move_primary_back: bool = False
    verify_requests: int = 10
    verify_deadline: float = 3.0


@dataclass
class SwitchReport:
    flow: str
    phases: list[PhaseResult] = field(default_factory=list)
    event: dict[str, Any] | None = None
    fence: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "changed": sum(len(p.changed) for p in self.phases),
            "phases": [
                {
                    "phase": p.phase,
                    "seconds": p.seconds,
                    "dry_run": p.dry_run,
                    "changed": [{"host": o.host, "operation": o.name} for o in p.changed],
                    "operations": len(p.ops),
                }
                for p in self.phases
            ],
            "event": self.event,
            "fence": self.fence,
        }


class VerifyFailed(DepmirrorError):
    def __init__(self, message: str, host: str) -> None:
        super().__init__(message)
        self.host = host


def _store(source: FleetSource) -> str:
    if not source.store:
        raise ConfigError(
            str(source.path), "state_store", "is not set", "a rollback reads and records the state store: set it"
        )
    return source.store


def _request(source: FleetSource, dependency: str, instance: str, args: Any, **extra: Any) -> SwitchoverRequest:
    return SwitchoverRequest(
        graph=str(source.graph),
        store=_store(source),
        dependency=dependency,
        instance=instance,
        prometheus_url=source.prometheus_url,
        prometheus_token=source.prometheus_token,
        prometheus_timeout=PROMETHEUS_TIMEOUT_S,
        health_interval=args.health_interval,
        trigger=dict(args.trigger),
        action_id=args.action_id or None,
        **extra,
    )


class _Run:
    """What one switchover's phases share: the graph, the hosts' document, the report."""

    def __init__(
        self, flow: str, source: FleetSource, collection: Collection, connection: Connection, options: PhaseOptions
    ) -> None:
        if options.dry_run:
            raise ConfigError("--dry-run", "", "is not offered for a rollback or failback", "run it without")
        self.source, self.collection, self.connection, self.options = source, collection, connection, options
        self.graph: Graph = load_graph(source.graph)
        self.report = SwitchReport(flow)

    def phase(self, name: str, dependencies: list[dict[str, Any]], hosts: list[str], add_ops: Any) -> None:
        document = inventory_document(self.graph, {"dependencies": dependencies}, self.source.store)
        self.report.phases.append(run_phase(name, document, self.connection, hosts, add_ops, self.options))

    def route(self, dependencies: list[dict[str, Any]]) -> None:
        """swap.yml on every load balancer: render, nginx -t, swap, reload; no install, backup or prune."""
        options = NginxOptions()
        routing = dataclasses.asdict(self.graph.policy.routing)

        def add_ops(state: State) -> list[Added]:
            added = []
            for host in state.inventory:
                release = render_release(
                    self.collection.nginx_templates,
                    dependencies,
                    routing,
                    self.graph.policy.health.unhealthy,
                    self.graph.load_balancers[host.name].address,
                    options,
                )
                added += route_release(state, host, release, options, self.collection, full=False)
            return added

        self.phase("route", dependencies, list(self.graph.load_balancers), add_ops)

    def verify(self, kind: str, port: int, expect: str, forbid: str | None, args: Any) -> list[dict[str, Any]]:
        checks = []
        for name, lb in self.graph.load_balancers.items():
            check = check_traffic(
                kind,
                lb.address,
                port,
                expect=expect,
                forbid=forbid,
                requests=args.verify_requests,
                deadline_s=args.verify_deadline,
            )
            checks.append(check.to_dict())
            if not check.ok:
                raise VerifyFailed(f"traffic through {lb.address}:{port} is not right: {check.detail}", name)
        return checks


def _failed(
    run: _Run, flow: str, decided: dict[str, Any], args: Any, error: PhaseFailed | VerifyFailed, phase: str
) -> None:
    """roles/rollback/tasks/failed.yml: the failed event, then the error goes on to the caller."""
    instance = decided["failed"]["host"] if flow == "rollback" else decided["recovered"]["host"]
    target = (decided["target"] if flow == "rollback" else decided["new_primary"])["host"]
    host = error.host if isinstance(error, VerifyFailed) else ""
    run.report.event = record_event(
        _store(run.source),
        {
            "kind": flow,
            "dependency": decided["dependency"],
            "outcome": "failed",
            "instance": instance,
            "target": target,
            "action": "switchover" if flow == "rollback" else "failback",
            "trigger": dict(args.trigger),
            "inputs": decided["inputs"],
            "decision": decided["reason"],
            "reason": f"the {phase} phase failed: {error}",
            "duration_s": elapsed(decided["started"]),
            "details": {"action_id": args.action_id, "phase": phase, "host": host, "frontend": "pyinfra"},
        },
    )


def rollback(
    source: FleetSource, collection: Collection, connection: Connection, options: PhaseOptions, args: RollbackArgs
) -> SwitchReport:
    run = _Run("rollback", source, collection, connection, options)
    request = _request(source, args.dependency, args.failed_instance, args, candidates=args.candidates)
    try:
        decided = decide_rollback(request)  # a refusal is recorded there
    except RollbackRefused as refused:
        raise DepmirrorError(f"refused: {refused.decision.reason}") from None
    phase = "migrate"
    try:
        if decided["kind"] == "redis":
            decided = _migrate(run, request, decided, args)
        phase = "route"
        run.route(decided["dependencies"])
        phase = "verify"
        target, failed = decided["target"], decided["failed"]
        checks = run.verify(
            decided["kind"],
            decided["port"],
            f"{target['address']}:{target['port']}",
            f"{failed['address']}:{failed['port']}",
            args,
        )
    except (PhaseFailed, VerifyFailed) as error:
        _failed(run, "rollback", decided, args, error, phase)
        raise DepmirrorError(
            f"the rollback of {args.dependency} failed in its {phase} phase (recorded as a failed event): {error}"
        ) from None
    run.report.event = record_event(
        _store(source),
        {
            "kind": "rollback",
            "dependency": args.dependency,
            "outcome": "succeeded",
            "instance": failed["host"],
            "target": target["host"],
            "action": "switchover",
            "trigger": dict(args.trigger),
            "inputs": decided["inputs"],
            "decision": f"{target['host']} is the primary of {args.dependency}; "
            f"{failed['host']} is fenced out of every upstream",
            "reason": decided["reason"],
            "duration_s": elapsed(decided["started"]),
            "set_primary": target["host"],
            "details": {
                "action_id": args.action_id,
                "candidates": decided["decision"]["candidates"],
                "traffic": checks,
                "fence": "the failed instance is out of every upstream; stopping it on its host follows, best effort",
                "frontend": "pyinfra",
            },
        },
    )
    record_routing(_store(source), decided["after"])
    run.report.fence = _fence(run, decided, args)
    return run.report


def _migrate(run: _Run, request: SwitchoverRequest, decided: dict[str, Any], args: RollbackArgs) -> dict[str, Any]:
    """migrate.yml: read every survivor's offset, decide again with them, promote the target, repoint the rest."""
    port = int(decided["port"])
    chosen: dict[str, Any] = {}

    def add_ops(state: State) -> list[Added]:
        infos = prefetch(state, RedisReplication, {h.name: {"port": port} for h in state.inventory})
        answered = {host: info for host, info in infos.items() if "role:" in info}
        again = dataclasses.replace(request, offsets=offsets_of(answered), max_lag=args.max_lag)
        chosen.update(decide_rollback(again))
        target = chosen["target"]
        added = []
        for host in state.inventory:
            if host.name not in answered:
                continue
            if host.name == target["host"]:
                commands = ["REPLICAOF NO ONE", "CONFIG REWRITE"]
            else:
                commands = [f"REPLICAOF {target['address']} {int(target['port'])}", "CONFIG REWRITE"]
            added.append(
                add(
                    state,
                    host,
                    "Promote the target, or repoint this replica to it, and keep that across restarts",
                    server.shell,
                    commands=[_redis_cli(port, commands)],
                )
            )
        return added

    run.phase("migrate", decided["dependencies"], list(decided["survivors"]), add_ops)
    chosen["started"] = decided["started"]
    return chosen


def _redis_cli(port: int, commands: list[str], address: str | None = None) -> str:
    """redis-cli with `commands` on stdin; fails unless every reply is OK (as the playbook's failed_when)."""
    where = f"-h {shlex.quote(address)} " if address else ""
    feed = shlex.quote("\n".join(commands) + "\n")
    return (
        f'out=$(printf %s {feed} | redis-cli {where}-p {int(port)}); echo "$out"; '
        f'[ "$(echo "$out" | grep -cx OK)" = {len(commands)} ]'
    )


def _fence(run: _Run, decided: dict[str, Any], args: RollbackArgs) -> str:
    """fence.yml: stop and disable the failed instance where its host answers; best effort, short timeout."""
    failed = decided["failed"]["host"]
    quick = dataclasses.replace(run.options, connect_timeout=max(1, int(args.fence_timeout)))
    unit = unit_name(args.dependency)

    def add_ops(state: State) -> list[Added]:
        return [
            add(state, host, f"Stop and disable {unit}", systemd.service, service=unit, running=False, enabled=False)
            for host in state.inventory
        ]

    document = inventory_document(run.graph, {"dependencies": decided["dependencies"]}, run.source.store)
    try:
        run.report.phases.append(run_phase("fence", document, run.connection, [failed], add_ops, quick))
    except PhaseFailed as error:
        return f"not fenced on its host (it is out of every upstream): {error}"
    return f"{unit} stopped and disabled on {failed}"


def failback(
    source: FleetSource, collection: Collection, connection: Connection, options: PhaseOptions, args: FailbackArgs
) -> SwitchReport:
    run = _Run("failback", source, collection, connection, options)
    request = _request(source, args.dependency, args.recovered_instance, args)
    try:
        decided = decide_failback(request, hold_s=args.hold_seconds, move_primary_back=args.move_primary_back)
    except FailbackRefused as refused:
        raise DepmirrorError(f"refused: {refused}") from None
    phase = "resync"
    try:
        run.phase(
            "resync",
            decided["dependencies"],
            [decided["recovered"]["host"]],
            lambda state: _resync(state, run, decided, args),
        )
        phase = "route"
        run.route(decided["dependencies"])
        phase = "verify"
        primary = decided["new_primary"]
        checks = run.verify(decided["kind"], decided["port"], f"{primary['address']}:{primary['port']}", None, args)
    except (PhaseFailed, VerifyFailed) as error:
        _failed(run, "failback", decided, args, error, phase)
        raise DepmirrorError(
            f"the failback of {args.dependency} failed in its {phase} phase (recorded as a failed event): {error}"
        ) from None
    recovered = decided["recovered"]["host"]
    run.report.event = record_event(
        _store(source),
        {
            "kind": "failback",
            "dependency": args.dependency,
            "outcome": "succeeded",
            "instance": recovered,
            "target": primary["host"],
            "action": "failback-primary" if decided["move_primary_back"] else "failback-mirror",
            "trigger": dict(args.trigger),
            "inputs": decided["inputs"],
            "decision": f"{recovered} rejoins {args.dependency}; the primary is {primary['host']}",
            "reason": decided["reason"],
            "duration_s": elapsed(decided["started"]),
            "set_primary": primary["host"],
            "details": {
                "action_id": args.action_id,
                "hold_seconds": args.hold_seconds,
                "traffic": checks,
                "frontend": "pyinfra",
            },
        },
    )
    record_routing(_store(source), decided["after"])
    return run.report


def _resync(state: State, run: _Run, decided: dict[str, Any], args: FailbackArgs) -> list[Added]:
    """resync.yml on the recovered host."""
    port = int(decided["port"])
    unit = unit_name(args.dependency)
    primary, recovered = decided["primary"], decided["recovered"]
    redis = decided["kind"] == "redis"
    added = []
    for host in state.inventory:

        def step(name: str, *commands: str, host: Any = host) -> None:
            added.append(add(state, host, name, server.shell, commands=list(commands)))

        if redis:
            conf = f"{run.collection.mirror.config_dir}/{args.dependency}.redis.conf"
            line = f"replicaof {primary['address']} {int(primary['port'])}"
            step(
                "Point the redis configuration at the current primary before it starts",
                f"if grep -q '^replicaof ' {shlex.quote(conf)}; then sed -i {shlex.quote(f's/^replicaof .*/{line}/')} "
                f"{shlex.quote(conf)}; else echo {shlex.quote(line)} >> {shlex.quote(conf)}; fi",
            )
        added.append(
            add(
                state,
                host,
                f"Start and enable the recovered instance of {args.dependency}",
                systemd.service,
                service=unit,
                running=True,
                enabled=True,
            )
        )
        if not redis:
            # /dev/tcp is bash's: pyinfra runs commands with sh, which is dash on Debian and never connects.
            wait_port = (
                f"for i in $(seq {REDIS_SYNC_TIMEOUT_S}); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && exit 0;"
                f" sleep 1; done; echo 'port {port} did not open' >&2; exit 1"
            )
            step("Wait until the recovered instance accepts connections", f"bash -c {shlex.quote(wait_port)}")
            continue
        step(
            "Make the running instance a replica of the current primary, and keep it across restarts",
            _redis_cli(port, [f"REPLICAOF {primary['address']} {int(primary['port'])}", "CONFIG REWRITE"]),
        )
        step(
            "Wait until the replica has synced with the primary",
            f"for i in $(seq {REDIS_SYNC_TIMEOUT_S}); do info=$(redis-cli -p {port} info replication); "
            'echo "$info" | grep -q master_link_status:up && echo "$info" | grep -q master_sync_in_progress:0 '
            "&& exit 0; sleep 1; done; echo 'the replica did not sync' >&2; exit 1",
        )
        if not decided["move_primary_back"]:
            continue
        step(
            "Move the primary role back to this instance with a coordinated FAILOVER",
            f'[ "$(redis-cli -h {shlex.quote(primary["address"])} -p {int(primary["port"])} FAILOVER TO '
            f'{shlex.quote(recovered["address"])} {int(recovered["port"])} TIMEOUT 5000)" = OK ]',
        )
        step(
            "Wait until this instance is the primary",
            f'for i in $(seq 10); do [ "$(redis-cli -p {port} role | head -1)" = master ] && exit 0; sleep 1; done;'
            " echo 'it did not become the primary' >&2; exit 1",
        )
        rewrites = [_redis_cli(port, ["CONFIG REWRITE"]), _redis_cli(port, ["CONFIG REWRITE"], primary["address"])]
        for replica in decided["replicas"]:
            address = run.graph.vms[replica].address if replica in run.graph.vms else replica
            rewrites.append(
                _redis_cli(
                    port, [f"REPLICAOF {recovered['address']} {int(recovered['port'])}", "CONFIG REWRITE"], address
                )
            )
        step("Rewrite the configuration of every instance to its new role, and repoint the other replicas", *rewrites)
    return added
