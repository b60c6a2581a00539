"""playbooks/adjust.yml over pyinfra: provision primaries, then mirrors, route, decommission, record.

The plan is the one `depmirror.mirroring.plan` computes (`fleet.planning.plan_for_playbook`), the hosts and
their data the inventory plugin's (`views.inventory`), what each VM runs `views.host_instances`', and the
record `fleet.applied.record_applied_plan`'s: only the operations are pyinfra's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyinfra.api import State
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, server, systemd

from depmirror.errors import DepmirrorError
from depmirror.fleet.applied import RecordResult, record_applied_plan
from depmirror.fleet.planning import plan_for_playbook
from depmirror.frontends.pyinfra.collection import Collection
from depmirror.frontends.pyinfra.engine import Added, PhaseOptions, PhaseResult, add, prefetch, run_phase
from depmirror.frontends.pyinfra.facts import DepmirrorHostState, ReleaseDirs
from depmirror.frontends.pyinfra.inventory import Connection
from depmirror.frontends.pyinfra.operations import instance_absent, instance_present, nginx_release, unit_name
from depmirror.frontends.pyinfra.source import FleetSource
from depmirror.graph.load import load_graph
from depmirror.rollback.nginx import NginxOptions, Release, render_release
from depmirror.views.host_instances import decommissions_for_host, instances_for_host
from depmirror.views.inventory import inventory_document

STREAM_MODULE = "/etc/nginx/modules-enabled/50-mod-stream.conf"  # there exactly when both packages are


@dataclass
class AdjustReport:
    summary: Any
    phases: list[PhaseResult] = field(default_factory=list)
    recorded: RecordResult | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(len(p.changed) for p in self.phases)

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "changed": self.changed,
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
            "recorded": None if self.recorded is None else {"changed": self.recorded.changed},
            "warnings": self.warnings,
        }


@dataclass(frozen=True, slots=True)
class Fleet:
    """What every phase reads: the plan and the inventory document built from it."""

    plan: dict[str, Any]
    document: dict[str, Any]
    warnings: list[str]

    def group(self, name: str) -> list[str]:
        return list((self.document["groups"].get(name) or {}).get("hosts", []))


def plan_fleet(source: FleetSource) -> Fleet:
    graph = load_graph(source.graph)
    plan, warnings = plan_for_playbook(
        source.graph,
        store=source.store,
        prometheus_url=source.prometheus_url,
        prometheus_token=source.prometheus_token,
        prometheus_timeout=source.prometheus_timeout,
    )
    return Fleet(plan, inventory_document(graph, plan, source.store), warnings)


def adjust(source: FleetSource, collection: Collection, connection: Connection, options: PhaseOptions) -> AdjustReport:
    fleet = plan_fleet(source)
    report = AdjustReport(fleet.plan.get("summary"), warnings=list(fleet.warnings))
    vms = fleet.group("depmirror_vms")
    wanted = {vm: instances_for_host(fleet.plan, vm) for vm in vms}
    _refuse_orphan_replicas(wanted)
    primaries = {vm: [i for i in items if i["role"] == "primary"] for vm, items in wanted.items()}
    others = {vm: [i for i in items if i["role"] != "primary"] for vm, items in wanted.items()}
    gone = {vm: decommissions_for_host(fleet.plan, vm) for vm in vms}

    def phase(name: str, hosts: list[str], add_ops: Any) -> None:
        report.phases.append(run_phase(name, fleet.document, connection, hosts, add_ops, options))

    phase("primaries", [h for h, i in primaries.items() if i], lambda s: _provision(s, primaries, collection))
    phase("mirrors", [h for h, i in others.items() if i], lambda s: _provision(s, others, collection))
    phase(
        "load balancers",
        fleet.group("depmirror_load_balancers"),
        lambda s: _route(s, fleet, collection),
    )
    phase("decommission", [h for h, i in gone.items() if i], lambda s: _decommission(s, gone, collection))
    if source.store:
        report.recorded = record_applied_plan(source.store, fleet.plan, dry_run=options.dry_run)
    return report


def _refuse_orphan_replicas(wanted: Mapping[str, list[dict[str, Any]]]) -> None:
    """The mirror role's assert: a Redis replica must name its primary."""
    for vm, items in wanted.items():
        for item in items:
            orphan = not item["primary_address"] or int(item["primary_port"] or 0) <= 0
            if item["kind"] == "redis" and item["role"] != "primary" and orphan:
                raise DepmirrorError(
                    f"{item['dependency']} is a Redis {item['role']} on {vm} but the plan names no primary "
                    "address or port for it (fix: check the plan with `depmirror plan`)"
                )


def _watched(collection: Collection, items: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    paths: list[str] = []
    for item in items:
        f = collection.instance_files(item)
        paths += [f.data_dir, f.unit_path, f.config_path, f.config_path.rsplit("/", 1)[0]]
    return {"paths": tuple(dict.fromkeys(paths)), "units": tuple(unit_name(i["dependency"]) for i in items)}


def _provision(state: State, per_host: Mapping[str, list[dict[str, Any]]], collection: Collection) -> list[Added]:
    known = prefetch(state, DepmirrorHostState, {h: _watched(collection, i) for h, i in per_host.items() if i})
    added = []
    for host in state.inventory:
        for item in per_host.get(host.name, []):
            added.append(
                add(
                    state,
                    host,
                    f"Deploy {item['dependency']} ({item['role']})",
                    instance_present,
                    instance=item,
                    files=collection.instance_files(item),
                    known=known[host.name],
                    wait_timeout=collection.mirror.wait_timeout,
                )
            )
    return added


def _decommission(state: State, per_host: Mapping[str, list[dict[str, Any]]], collection: Collection) -> list[Added]:
    known = prefetch(state, DepmirrorHostState, {h: _watched(collection, i) for h, i in per_host.items() if i})
    added = []
    for host in state.inventory:
        for item in per_host.get(host.name, []):
            added.append(
                add(
                    state,
                    host,
                    f"Decommission {item['dependency']}: {item['reason']}",
                    instance_absent,
                    dependency=item["dependency"],
                    files=collection.instance_files(item),
                    known=known[host.name],
                )
            )
    return added


def _route(state: State, fleet: Fleet, collection: Collection) -> list[Added]:
    """The nginx_upstream role's main.yml on every load balancer."""
    options = NginxOptions()
    routing = (
        (fleet.document["groups"].get("depmirror_load_balancers") or {}).get("vars", {}).get("depmirror_routing", {})
    )
    unhealthy_below = float(fleet.document["all_vars"].get("depmirror_unhealthy_below", 0.5))
    added = []
    for host in state.inventory:
        release = render_release(
            collection.nginx_templates,
            fleet.plan["dependencies"],
            routing,
            unhealthy_below,
            fleet.document["hosts"][host.name]["depmirror_address"],
            options,
        )
        added += route_release(state, host, release, options, collection, full=True)
    return added


def route_release(
    state: State, host: Any, release: Release, options: NginxOptions, collection: Collection, *, full: bool
) -> list[Added]:
    """main.yml when `full` (install check, backup, swap, running, prune), else swap.yml (the swap alone)."""
    added: list[Added] = []
    with_host = _HostOps(state, host, added)
    if full:
        if not host.get_fact(File, STREAM_MODULE):
            with_host.add("Install nginx and its stream module", apt.packages, packages=collection.nginx_packages)
        with_host.add(
            "Create the directory that holds the releases and the last good configuration",
            files.directory,
            path=options.conf_dir,
            mode="755",
        )
        original = f"{options.conf_dir}/nginx.conf.orig"
        if not host.get_fact(File, original):
            with_host.add(
                "Keep the nginx.conf this role found, before it first replaces it",
                server.shell,
                commands=[f"cp {options.nginx_conf} {original}", f"chmod 644 {original}"],
            )
    with_host.add(
        "Check the new upstreams with nginx -t, swap them in and reload, keeping the last good configuration",
        nginx_release,
        release=release,
        options=options,
        swap_source=collection.swap_source,
        _stdin=json.dumps(release.swap_params(options)),
    )
    if full:
        with_host.add(
            "Make sure nginx runs and starts at boot",
            systemd.service,
            service=options.service,
            running=True,
            enabled=True,
        )
        releases = host.get_fact(ReleaseDirs, f"{options.conf_dir}/releases")
        older = [path for _, path in releases if path != release.release][collection.nginx_keep_releases :]
        for path in older:
            with_host.add(f"Remove release {path}", files.directory, path=path, present=False)
    return added


@dataclass
class _HostOps:
    state: State
    host: Any
    added: list[Added]

    def add(self, name: str, op: Any, **kwargs: Any) -> None:
        self.added.append(add(self.state, self.host, name, op, **kwargs))
