"""playbooks/adjust.yml over pyinfra: provision primaries, then mirrors, route, decommission, record.

The plan is the one `depmirror.mirroring.plan` computes (`fleet.planning.plan_for_playbook`), the hosts and
their data the inventory plugin's (`views.inventory`), what each VM runs `views.host_instances`', and the
record `fleet.applied.record_applied_plan`'s: only the operations are pyinfra's.
"""

from __future__ import annotations

import json
from collections.abc import Collection as Names
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyinfra.api import State
from pyinfra.api.host import Host
from pyinfra.operations import apt, server

from depmirror.errors import ConfigError, DepmirrorError
from depmirror.fleet.applied import RecordResult, part_to_apply, record_applied_plan
from depmirror.fleet.planning import plan_for_playbook
from depmirror.frontends.pyinfra.collection import Collection
from depmirror.frontends.pyinfra.engine import Added, Phase, PhaseOptions, PhaseResult, add, run_phases
from depmirror.frontends.pyinfra.facts import HostState, Watch
from depmirror.frontends.pyinfra.inventory import Connection, flattened_groups
from depmirror.frontends.pyinfra.operations import (
    directory_present,
    instance_absent,
    instance_present,
    nginx_release,
    paths_absent,
    release_paths,
    service_running,
    unit_name,
)
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
                    "hosts": sorted({o.host for o in p.ops}),
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


def resolve_limit(document: Mapping[str, Any], limit: Names[str]) -> set[str]:
    """The hosts `--limit` names: host names or group names of the fleet's inventory, as Ansible's limit."""
    groups = flattened_groups(document)
    hosts: set[str] = set()
    unknown = []
    for name in limit:
        if name in document["hosts"]:
            hosts.add(name)
        elif name in groups:
            hosts.update(groups[name])
        else:
            unknown.append(name)
    known = sorted(document["hosts"])
    shown = ", ".join(known[:12]) + (f" and {len(known) - 12} more" if len(known) > 12 else "")
    fix = f"name hosts or groups of the fleet, comma-separated; its hosts are {shown}"
    if unknown:
        names = ", ".join(repr(name[:80]) for name in unknown[:5])
        raise ConfigError("--limit", "", f"names {names}, not a host or group of the fleet", fix)
    if not hosts:  # only empty groups: Ansible's "no hosts matched"
        raise ConfigError("--limit", "", "matches no host", fix)
    return hosts


def adjust(
    source: FleetSource,
    collection: Collection,
    connection: Connection,
    options: PhaseOptions,
    limit: Names[str] | None = None,
) -> AdjustReport:
    """adjust.yml; `limit` (host or group names) as its --limit: the plan is the fleet's, the run applies the
    part those hosts get and records only that (fleet/partial.py), what waits is in the warnings."""
    fleet = plan_fleet(source)
    reached = None if limit is None else resolve_limit(fleet.document, limit)
    applied = fleet.plan if reached is None else part_to_apply(source.store, fleet.plan, reached)
    report = AdjustReport(fleet.plan.get("summary"), warnings=list(fleet.warnings))
    report.warnings += [_waits(item) for item in applied.get("held_back") or []]
    report.phases = run_phases(plan_phases(fleet, applied, collection, reached), fleet.document, connection, options)
    if source.store:
        report.recorded = record_applied_plan(source.store, fleet.plan, reached=reached, dry_run=options.dry_run)
    return report


def plan_phases(
    fleet: Fleet, applied: Mapping[str, Any], collection: Collection, reached: Names[str] | None = None
) -> list[Phase]:
    """adjust.yml's plays as phases, over the hosts in `reached` (None: every host), applying `applied`."""

    def only(hosts: list[str]) -> list[str]:
        return [h for h in hosts if reached is None or h in reached]

    vms = only(fleet.group("depmirror_vms"))
    wanted = {vm: instances_for_host(dict(applied), vm) for vm in vms}
    _refuse_orphan_replicas(wanted)
    primaries = {vm: [i for i in items if i["role"] == "primary"] for vm, items in wanted.items()}
    others = {vm: [i for i in items if i["role"] != "primary"] for vm, items in wanted.items()}
    gone = {vm: decommissions_for_host(dict(applied), vm) for vm in vms}
    lbs = {lb: _release(fleet, applied, collection, lb) for lb in only(fleet.group("depmirror_load_balancers"))}
    return [
        _instances("primaries", {h: i for h, i in primaries.items() if i}, collection, _provision),
        _instances("mirrors", {h: i for h, i in others.items() if i}, collection, _provision),
        Phase(
            "load balancers",
            {lb: _lb_watch(release) for lb, release in lbs.items()},
            lambda state, hosts, known: _route(state, hosts, known, lbs, collection),
        ),
        _instances("decommission", {h: i for h, i in gone.items() if i}, collection, _decommission),
    ]


def _waits(item: Mapping[str, Any]) -> str:
    what = item.get("dependency") or item.get("name") or "?"
    where = f" on {item['host']}" if item.get("host") else ""
    return f"held back by --limit: {what}{where}: {item.get('reason', 'outside this run')}"


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


def _watched(collection: Collection, items: list[dict[str, Any]]) -> Watch:
    paths: list[str] = []
    for item in items:
        f = collection.instance_files(item)
        paths += [f.data_dir, f.unit_path, f.config_path, f.config_path.rsplit("/", 1)[0]]
    return {"paths": tuple(dict.fromkeys(paths)), "units": tuple(unit_name(i["dependency"]) for i in items)}


PerHost = Mapping[str, list[dict[str, Any]]]


def _instances(name: str, per_host: PerHost, collection: Collection, ops: Any) -> Phase:
    return Phase(
        name,
        {host: _watched(collection, items) for host, items in per_host.items()},
        lambda state, hosts, known: ops(state, hosts, known, per_host, collection),
    )


def _provision(
    state: State, hosts: list[Host], known: Mapping[str, HostState], per_host: PerHost, collection: Collection
) -> list[Added]:
    return [
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
        for host in hosts
        for item in per_host.get(host.name, [])
    ]


def _decommission(
    state: State, hosts: list[Host], known: Mapping[str, HostState], per_host: PerHost, collection: Collection
) -> list[Added]:
    return [
        add(
            state,
            host,
            f"Decommission {item['dependency']}: {item['reason']}",
            instance_absent,
            dependency=item["dependency"],
            files=collection.instance_files(item),
            known=known[host.name],
        )
        for host in hosts
        for item in per_host.get(host.name, [])
    ]


def _release(fleet: Fleet, applied: Mapping[str, Any], collection: Collection, lb: str) -> Release:
    """What the nginx_upstream role renders on `lb` for the dependencies this run applies."""
    routing = (
        (fleet.document["groups"].get("depmirror_load_balancers") or {}).get("vars", {}).get("depmirror_routing", {})
    )
    return render_release(
        collection.nginx_templates,
        applied["dependencies"],
        routing,
        float(fleet.document["all_vars"].get("depmirror_unhealthy_below", 0.5)),
        fleet.document["hosts"][lb]["depmirror_address"],
        NginxOptions(),
    )


def _lb_watch(release: Release) -> Watch:
    """Everything the nginx_upstream role's main.yml decides from, read in the same round trip."""
    options = NginxOptions()
    role_paths = (STREAM_MODULE, options.conf_dir, f"{options.conf_dir}/nginx.conf.orig")
    return {
        "paths": (*role_paths, *release_paths(release, options)),
        "units": (options.service,),
        "dirs": (f"{options.conf_dir}/releases",),
    }


def _route(
    state: State, hosts: list[Host], known: Mapping[str, HostState], lbs: Mapping[str, Release], collection: Collection
) -> list[Added]:
    """The nginx_upstream role's main.yml on every load balancer."""
    added = []
    for host in hosts:
        release, options = lbs[host.name], NginxOptions()
        added += route_release(state, host, release, options, collection, full=True, known=known[host.name])
    return added


def route_release(
    state: State,
    host: Any,
    release: Release,
    options: NginxOptions,
    collection: Collection,
    *,
    full: bool,
    known: HostState | None = None,
) -> list[Added]:
    """main.yml when `full` (install check, backup, swap, running, prune; `known` read with `_lb_watch`), else
    swap.yml (the swap alone; `known` None: the swap reads its own facts)."""
    added: list[Added] = []
    with_host = _HostOps(state, host, added)
    if full:
        assert known is not None
        if known.files.get(STREAM_MODULE) is None:
            with_host.add("Install nginx and its stream module", apt.packages, packages=collection.nginx_packages)
        with_host.add(
            "Create the directory that holds the releases and the last good configuration",
            directory_present,
            path=options.conf_dir,
            known=known.files.get(options.conf_dir),
            mode="755",
        )
        original = f"{options.conf_dir}/nginx.conf.orig"
        if known.files.get(original) is None:
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
        known=known,
        _stdin=json.dumps(release.swap_params(options)),
    )
    if full:
        assert known is not None
        with_host.add("Make sure nginx runs and starts at boot", service_running, service=options.service, known=known)
        releases = known.listings.get(f"{options.conf_dir}/releases", [])
        older = [path for _, path in releases if path != release.release][collection.nginx_keep_releases :]
        for path in older:
            with_host.add(f"Remove release {path}", paths_absent, paths=[path])
    return added


@dataclass
class _HostOps:
    state: State
    host: Any
    added: list[Added]

    def add(self, name: str, op: Any, **kwargs: Any) -> None:
        self.added.append(add(self.state, self.host, name, op, **kwargs))
