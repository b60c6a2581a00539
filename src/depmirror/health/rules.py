"""Prometheus config pieces from the graph: blackbox probe targets, scrape jobs and alert rules.

The thresholds come from the dependency's SLO and the same PromQL as the health verdicts (queries.py),
and `for:` spans the same N samples as the `failing` verdict, so an alert and the planner agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from depmirror.durations import parse_duration
from depmirror.errors import ConfigError
from depmirror.graph.health_spec import HealthSpec
from depmirror.graph.model import Graph, Slo
from depmirror.health.queries import (
    BLACKBOX_JOB,
    DependencyQueries,
    InstanceRef,
    blackbox_selector,
    format_duration,
    probe_module,
    probe_target,
    queries_for,
)
from depmirror.planner.state import instance_key

ROLES = ("primary", "mirror", "standby")
# What the runner does with an alert: only a primary that is down rolls back.
ACTION_ROLLBACK = "rollback"
ACTION_ADJUST = "adjust"
ACTION_NOTIFY = "notify"
# The zone alert: the runner shifts the zone named by its `zone` label (docs/runner.md, "The zone alert").
ACTION_ZONAL_SHIFT = "zonal_shift"
ZONE_ALERT = "DepmirrorZoneDown"
ZONE_GROUP = "depmirror-zones"
_NAMED_BY = ("dependency", "host")


def render_targets(graph: Graph, instances: Iterable[InstanceRef]) -> list[dict[str, Any]]:
    """file_sd target groups, one per instance, labelled with what the alerts and verdicts need."""
    groups = []
    for ref in instances:
        dependency = graph.dependencies.get(ref.dependency)
        vm = graph.vms.get(ref.host)
        where = f"instances.{ref.dependency}.{ref.host}"
        if dependency is None:
            raise ConfigError(graph.source, where, "unknown dependency", _one_of(graph.dependencies))
        if vm is None:
            raise ConfigError(graph.source, where, "unknown VM", _one_of(graph.vms))
        if ref.role not in ROLES:
            raise ConfigError(
                graph.source,
                f"{where}.role",
                f"unknown role {ref.role!r}",
                f"one of {', '.join(ROLES)}",
            )
        groups.append(
            {
                "targets": [probe_target(dependency, vm)],
                "labels": {
                    "__param_module": probe_module(dependency),
                    "dependency": dependency.name,
                    "kind": dependency.kind,
                    "host": vm.host,
                    "zone": vm.zone,
                    "role": ref.role,
                    "instance": instance_key(dependency.name, vm.host),
                },
            }
        )
    return sorted(groups, key=lambda g: g["labels"]["instance"])


def scrape_configs(
    blackbox_address: str, target_files: list[str], interval: float, *, runner_targets: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The probe job and the exporter's own; targets come from file_sd so a rollback needs no reload, or,
    with `runner_targets` (an `http_sd_configs` entry: url, authorization), from the runner's
    GET /api/v1/targets, which follows reconciliation and switchovers by itself."""
    every = format_duration(interval)
    discovery: dict[str, Any] = (
        {"http_sd_configs": [{"refresh_interval": every, **runner_targets}]}
        if runner_targets
        else {"file_sd_configs": [{"files": target_files, "refresh_interval": every}]}
    )
    return [
        {
            "job_name": BLACKBOX_JOB,
            "metrics_path": "/probe",
            "scrape_interval": every,
            "scrape_timeout": every,
            **discovery,
            "relabel_configs": [
                {"source_labels": ["__address__"], "target_label": "__param_target"},
                {"source_labels": ["__param_target"], "target_label": "target"},
                {"target_label": "__address__", "replacement": blackbox_address},
            ],
        },
        {
            "job_name": f"{BLACKBOX_JOB}-exporter",
            "scrape_interval": every,
            "scrape_timeout": every,
            "static_configs": [{"targets": [blackbox_address]}],
        },
    ]


def render_rules(graph: Graph, interval: float, specs: Mapping[str, HealthSpec] | None = None) -> dict[str, Any]:
    """A Prometheus rule file: one group per dependency."""
    groups = []
    for dependency in graph.dependencies.values():
        queries = queries_for(dependency, (specs or {}).get(dependency.name))
        hold = format_duration((queries.samples - 1) * interval)
        rules = _rules(queries, dependency.slo, hold)
        groups.append({"name": f"depmirror-{dependency.name}", "rules": rules})
    return {"groups": groups}


def render_zone_rules(graph: Graph, interval: float) -> dict[str, Any] | None:
    """The zone alert: at least `alert_fraction` of a zone's probed instances failing, and at least
    `alert_min_vms` of its VMs with every probe failing, for `samples` probes in a row. None when the
    policy's mode is `off`. One series per zone, labelled with it; instances of every role count.

    Why VMs for the minimum: one VM runs instances of many dependencies, so in a zone of two VMs one dead
    VM is half the zone's instances; it must not shift the zone (its own alerts switch what it ran)."""
    policy = graph.policy.zonal_shift
    if policy.mode == "off":
        return None
    probes = f'probe_success{{job="{BLACKBOX_JOB}"}}'
    failing = f"count by (zone) ({probes} < 0.5)"
    dead_vms = f"count by (zone) (max by (zone, host) ({probes}) < 0.5)"
    expr = (
        f"({failing} / count by (zone) ({probes})) >= {policy.alert_fraction:g}"
        f" and on (zone) {dead_vms} >= {policy.alert_min_vms}"
    )
    rule = _rule(
        ZONE_ALERT,
        expr,
        format_duration((policy.samples - 1) * interval),
        {"severity": "critical", "action": ACTION_ZONAL_SHIFT},
        "Zone {{ $labels.zone }} is down ({{ $value | humanizePercentage }} of its probed instances failing):"
        " shift every primary out of it",
    )
    return {"name": ZONE_GROUP, "rules": [rule]}


def _with_instance_labels(expr: str, dependency: str, role: str) -> str:
    """Give a custom query's series the target's labels (and keep only the wanted roles).

    Custom queries need only a `host` label; the blackbox probe of the same instance carries the rest.
    """
    targets = f"probe_success{blackbox_selector(dependency, role)}"
    return (
        f"({expr}) * on(host) group_left(dependency, zone, role, instance) "
        f"group by (dependency, host, zone, role, instance) ({targets})"
    )


def _rule(alert: str, expr: str, hold: str, labels: dict[str, str], summary: str) -> dict[str, Any]:
    return {
        "alert": alert,
        "expr": expr,
        "for": hold,
        "labels": labels,
        "annotations": {"summary": summary, "value": "{{ $value }}"},
    }


def _rules(queries: DependencyQueries, slo: Slo, hold: str) -> list[dict[str, Any]]:
    name = queries.dependency
    down = f"({queries.up}) < 0.5"
    latency_s = slo.latency_ms / 1000.0
    rules = [
        _rule(
            "DepmirrorPrimaryDown",
            _with_instance_labels(down, name, 'role="primary"'),
            hold,
            {"dependency": name, "severity": "critical", "action": ACTION_ROLLBACK},
            "Primary {{ $labels.instance }} of " + name + " is down: roll back to a healthy mirror",
        ),
        _rule(
            "DepmirrorInstanceDown",
            _with_instance_labels(down, name, 'role!="primary"'),
            hold,
            {"dependency": name, "severity": "warning", "action": ACTION_ADJUST},
            "Instance {{ $labels.instance }} of " + name + " is down: re-plan to replace it",
        ),
        _rule(
            "DepmirrorLatencyOverSlo",
            _with_instance_labels(f"({queries.latency}) > {latency_s:g}", name, ""),
            hold,
            {"dependency": name, "severity": "warning", "action": ACTION_NOTIFY},
            "Latency of {{ $labels.instance }} is over the SLO of " + f"{slo.latency_ms:g} ms",
        ),
    ]
    if queries.error_ratio is not None:
        rules.append(
            _rule(
                "DepmirrorErrorRatioOverSlo",
                _with_instance_labels(f"({queries.error_ratio}) > {slo.error_ratio:g}", name, ""),
                hold,
                {"dependency": name, "severity": "warning", "action": ACTION_NOTIFY},
                "Error ratio of {{ $labels.instance }} is over the SLO of " + f"{slo.error_ratio:g}",
            )
        )
    rules.append(
        _rule(
            "DepmirrorHealthUnknown",
            f"absent({queries.up})",
            hold,
            {"dependency": name, "severity": "warning", "action": ACTION_NOTIFY},
            f"No health data for {name}: its health is unknown, nothing is done automatically",
        )
    )
    return rules


def _one_of(names: Iterable[str]) -> str:
    return "one of: " + ", ".join(sorted(names))


def instance_refs(value: Any) -> list[InstanceRef]:
    """Instances from a list of {dependency, host, role} or from a plan (`depmirror plan --format json`)."""
    if isinstance(value, Mapping) and isinstance(value.get("dependencies"), list):
        return [
            InstanceRef(str(dep["name"]), str(item["host"]), str(item["role"]))
            for dep in value["dependencies"]
            for item in dep.get("instances", [])
        ]
    if not isinstance(value, list):
        raise ValueError(f"instances must be a list or a plan, got {type(value).__name__}")
    refs = []
    for index, item in enumerate(value):
        named = isinstance(item, Mapping) and all(isinstance(item.get(k), str) for k in _NAMED_BY)
        if not named:
            raise ValueError(f"instances[{index}] must be a mapping with dependency, host and role strings")
        refs.append(InstanceRef(item["dependency"], item["host"], item.get("role")))
    return refs


def monitoring_config(
    graph: Graph,
    instances: Any,
    interval: str | float,
    blackbox_address: str,
    targets_file: str,
    *,
    runner_targets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the `monitoring` role writes that depends on the graph: rules, targets and scrape jobs.
    With `runner_targets` (from health.runner_discovery) the probe job discovers from the runner instead of
    `targets_file`; the targets are still rendered (the role writes the file either way)."""
    seconds = parse_duration(interval)
    rules = render_rules(graph, seconds)
    zone_group = render_zone_rules(graph, seconds)
    if zone_group is not None:
        rules["groups"].append(zone_group)
    return {
        "rules": rules,
        "targets": render_targets(graph, instance_refs(instances)),
        "scrape_configs": scrape_configs(blackbox_address, [targets_file], seconds, runner_targets=runner_targets),
    }
