"""Read a graph file: YAML -> JSON Schema -> semantic checks -> `Graph`.

Every problem is a ConfigError naming the file, the dotted field (`dependencies.payments.tier`) and what
is allowed, so the CLI and the inventory plugin can show it without a traceback.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import reprlib
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from depmirror.errors import ConfigError
from depmirror.gc_pause import paused_gc
from depmirror.graph.build import build_graph
from depmirror.graph.groups import check_group_names
from depmirror.graph.model import STATEFUL_KINDS, Dependency, Graph
from depmirror.graph.yaml_file import load_yaml as _load_yaml

# A 10k-dependency graph is 3.8 MB (docs/performance.md); 16 MiB is four times that, and a file this size
# already takes about a minute and several GB to load.
MAX_GRAPH_BYTES = 16 * 1024 * 1024

_PATTERN_HELP = {
    "^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$": "lowercase letters, digits, '-' and '_', at most 63 characters, "
    "starting and ending with a letter or digit",
    "^[0-9]+(ms|s|m|h)$": "a duration such as 500ms, 10s, 2m",
    "^/": "a URL path starting with /",
    "^[a-z0-9_ ]+$": "nginx proxy_next_upstream words, e.g. 'error timeout http_502'",
    # policy.zonal_shift.expires: a duration of 72h at most, in whole hours, minutes or seconds.
    "^(([1-9]|[1-6][0-9]|7[0-2])h|([1-9][0-9]{0,2}|[1-3][0-9]{3}|4[0-2][0-9]{2}|43[01][0-9]|4320)m"
    "|([1-9][0-9]{0,4}|1[0-9]{5}|2[0-4][0-9]{4}|25[0-8][0-9]{3}|259[01][0-9]{2}|259200)s)$": "a duration of at "
    "most 72h such as 30m or 1h (a zonal shift always ends)",
}
_NAME_PATTERN = "^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$"
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


@paused_gc()  # a 10k-dependency file is ~700k YAML nodes, all kept until the Graph is built
def load_graph(path: str | Path) -> Graph:
    """Load and validate a graph file; raises ConfigError on anything a user must fix."""
    source = str(path)
    try:
        # Bytes, not text: libyaml reads UTF-8 itself, and skips a decode and re-encode of the file.
        with open(path, "rb") as handle:
            text = handle.read(MAX_GRAPH_BYTES + 1)
    except OSError as error:
        raise ConfigError(
            source, "", f"cannot read the graph file: {error.strerror}", "give --graph an existing file"
        ) from error
    if len(text) > MAX_GRAPH_BYTES:
        raise ConfigError(
            source,
            "",
            f"the graph file is larger than {MAX_GRAPH_BYTES // (1024 * 1024)} MiB",
            "split the fleet into several graph files (a 10,000-dependency graph is about 4 MB)",
        )
    return parse_graph(_load_yaml(text, source), source)


def parse_graph(data: Any, source: str) -> Graph:
    """Validate already-parsed data (from YAML or built in code) and build the Graph."""
    _check_schema(data, source)
    graph = build_graph(data, source)
    _check_semantics(graph)
    return graph


# --- schema -----------------------------------------------------------------------------------------


@functools.cache
def _schema() -> dict[str, Any]:
    text = resources.files("depmirror.graph").joinpath("schemas/graph.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    schema = _schema()
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


@functools.cache
def _fast_check() -> Callable[[Any], Any] | None:
    """fastjsonschema's compiled check of the same schema: about 10x faster on fleets of 10k.

    It only answers "valid or not"; a failure is then explained by jsonschema, whose errors carry the
    path and the failing keyword. Without fastjsonschema, jsonschema does all the work (slower).
    """
    try:
        import fastjsonschema  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    check: Callable[[Any], Any] = fastjsonschema.compile(_schema())
    return check


def _check_schema(data: Any, source: str) -> None:
    fast = _fast_check()
    if fast is not None:
        try:
            fast(data)
            return
        except Exception:  # any failure at all: jsonschema finds it again and explains it
            pass
    errors = list(_validator().iter_errors(data))
    if not errors:
        return
    # The deepest error, then the first in document order: the most specific thing to fix.
    error = min(errors, key=lambda e: (-len(e.absolute_path), [str(p) for p in e.absolute_path]))
    field, problem, fix = _explain_schema_error(error)
    raise ConfigError(source, field, problem, fix)


def _dotted(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        name = str(part) if len(str(part)) <= 80 else str(part)[:77] + "..."  # keeps the error one short line
        text += f"[{part}]" if isinstance(part, int) else (f".{name}" if text else name)
    return text


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxdict = 4
_SHORT.maxlevel = 2


def _explain_schema_error(error: jsonschema.ValidationError) -> tuple[str, str, str]:
    path = list(error.absolute_path)
    field = _dotted(path) or "(top level)"
    kind, expected, value = error.validator, error.validator_value, error.instance
    shown = _Short(value)
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    if kind == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        name = missing[0] if missing else "?"
        return _dotted([*path, name]), "is missing", f"add `{name}`"
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed))
        return _dotted([*path, extra[0]]), "unknown field", f"allowed here: {', '.join(allowed)}"
    if "propertyNames" in error.absolute_schema_path:
        # The instance is the offending key itself; name it in the path so the user finds it.
        return _dotted([*path, str(value)]), f"invalid name {shown!r}", _PATTERN_HELP[_NAME_PATTERN]
    if kind == "pattern":
        return field, f"{shown!r} is not allowed", _PATTERN_HELP.get(str(expected), f"match {expected}")
    if kind == "enum":
        allowed_values = ", ".join(str(v) for v in schema.get("enum", []))
        return field, f"{shown!r} is not allowed", f"one of: {allowed_values}"
    if kind == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else expected
        return field, f"expected {wanted}, got {type(value).__name__} {shown!r}", f"a value of type {wanted}"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return field, f"{shown!r} is out of range", _range_text(schema)
    if kind == "minProperties":
        return field, "is empty", "add at least one entry"
    if kind == "minItems":
        return field, "is empty", "a list of at least one string (the program, then its arguments)"
    if kind == "minLength":
        return field, "is empty", "a non-empty string"
    if kind == "const":
        return field, f"{shown!r} is not supported", f"use {expected!r}"
    return field, f"{shown!r} does not match the schema ({kind})", "see docs/graph.md"


class _Short:
    """A value as an error message shows it: its repr cut short, so a huge value still gives one short line."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return _SHORT.repr(self.value)

    def __str__(self) -> str:
        return repr(self)


def _range_text(schema: dict[str, Any]) -> str:
    kind = "an integer" if schema.get("type") == "integer" else "a number"
    parts = []
    if "minimum" in schema:
        parts.append(f">= {schema['minimum']}")
    if "exclusiveMinimum" in schema:
        parts.append(f"> {schema['exclusiveMinimum']}")
    if "maximum" in schema:
        parts.append(f"<= {schema['maximum']}")
    return f"{kind} {' and '.join(parts)}"


# --- semantic checks --------------------------------------------------------------------------------


def _check_semantics(graph: Graph) -> None:
    for check in (
        _check_names,
        _check_zones,
        _check_addresses,
        _check_edges,
        _check_dependencies,
        _check_policy,
    ):
        check(graph)
    _check_capacity(graph)


def _check_names(graph: Graph) -> None:
    for name in graph.services:
        if name in graph.dependencies:
            raise ConfigError(
                graph.source,
                f"services.{name}",
                f"duplicate name: {name!r} is also a dependency",
                "a name is either a service or a dependency; list it once (a dependency may have depends_on too)",
            )
    for host in graph.load_balancers:
        if host in graph.vms:
            raise ConfigError(
                graph.source,
                f"load_balancers.{host}",
                f"duplicate name: {host!r} is also a VM",
                "give the load balancer and the VM different host names",
            )
    check_group_names(graph)


def _check_zones(graph: Graph) -> None:
    known = ", ".join(graph.zones)
    for vm in graph.vms.values():
        if vm.zone not in graph.zones:
            raise ConfigError(graph.source, f"vms.{vm.host}.zone", f"unknown zone {vm.zone!r}", f"one of: {known}")
    for lb in graph.load_balancers.values():
        if lb.zone is not None and lb.zone not in graph.zones:
            raise ConfigError(
                graph.source,
                f"load_balancers.{lb.host}.zone",
                f"unknown zone {lb.zone!r}",
                f"one of: {known}",
            )
    used = {vm.zone for vm in graph.vms.values()}
    for zone in graph.zones:
        if zone not in used:
            raise ConfigError(
                graph.source,
                f"zones.{zone}",
                "zone has no VMs",
                f"add a VM with `zone: {zone}` under vms, or remove the zone",
            )


def _check_addresses(graph: Graph) -> None:
    seen: dict[str, str] = {}
    hosts = [("vms", vm.host, vm.address) for vm in graph.vms.values()]
    hosts += [("load_balancers", lb.host, lb.address) for lb in graph.load_balancers.values()]
    for section, host, address in hosts:
        field = f"{section}.{host}.address"
        if not _valid_address(address):
            raise ConfigError(graph.source, field, f"{address!r} is not an IP address or host name", "e.g. 198.18.0.11")
        if address in seen:
            raise ConfigError(
                graph.source,
                field,
                f"address {address} is also used by {seen[address]}",
                "give each host its own address",
            )
        seen[address] = host


def _valid_address(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(address)) and not address.replace(".", "").isdigit()


def _check_edges(graph: Graph) -> None:
    for section, nodes in (("services", graph.services), ("dependencies", graph.dependencies)):
        for node in nodes.values():
            for edge in node.depends_on:
                if edge.dependency in graph.dependencies:
                    continue
                field = f"{section}.{node.name}.depends_on.{edge.dependency}"
                if edge.dependency in graph.services:
                    raise ConfigError(
                        graph.source,
                        field,
                        f"{edge.dependency!r} is a service, not a dependency",
                        "only dependencies can be depended on: move it under dependencies",
                    )
                raise ConfigError(
                    graph.source,
                    field,
                    f"unknown dependency {edge.dependency!r}",
                    f"one of the names under dependencies ({_sample(graph.dependencies)})",
                )


def _sample(names: Iterable[str], limit: int = 8) -> str:
    listed = sorted(names)
    more = f", ... ({len(listed)} in all)" if len(listed) > limit else ""
    return ", ".join(listed[:limit]) + more


def _check_dependencies(graph: Graph) -> None:
    ports: dict[int, str] = {}
    vm_count = len(graph.vms)
    for dep in graph.dependencies.values():
        where = f"dependencies.{dep.name}"
        if dep.port in ports:
            raise ConfigError(
                graph.source,
                f"{where}.port",
                f"port {dep.port} is already used by dependency {ports[dep.port]!r}",
                "give each dependency its own port (instances of different dependencies share VMs)",
            )
        ports[dep.port] = dep.name
        rep = dep.replication
        if rep.min_rf > rep.max_rf:
            raise ConfigError(
                graph.source,
                f"{where}.replication.min",
                f"min RF {rep.min_rf} is greater than max RF {rep.max_rf}",
                "min <= max",
            )
        if rep.min_rf > vm_count:
            raise ConfigError(
                graph.source,
                f"{where}.replication.min",
                f"placement cannot be satisfied: min RF {rep.min_rf} needs {rep.min_rf} VMs, "
                f"the pool has {vm_count} "
                "(constraint: never two instances of a dependency on one VM)",
                f"lower min to at most {vm_count} or add VMs",
            )
        if not dep.multi_writer and rep.mode == "active-active":
            what = dep.kind if dep.kind in STATEFUL_KINDS else f"{dep.kind} with a `stateful:` block"
            raise ConfigError(
                graph.source,
                f"{where}.replication.mode",
                f"{what} is stateful (one writer) and cannot be active-active",
                "active-passive or auto",
            )
        if dep.state is not None:
            _check_argv(graph, where, dep)
        if dep.kind not in STATEFUL_KINDS and not dep.deploy.command:
            raise ConfigError(
                graph.source,
                f"{where}.deploy.command",
                f"a {dep.kind} dependency needs a command to run",
                "e.g. deploy: {command: 'python3 -m http.server {port}'}",
            )


# What would make Ansible (or a shell) read an argument as code: the commands run as the argv given, so say so.
_TEMPLATE_MARKERS = ("{{", "{%", "{#")


def _check_argv(graph: Graph, where: str, dep: Dependency) -> None:
    assert dep.state is not None
    if dep.kind in STATEFUL_KINDS:
        raise ConfigError(
            graph.source,
            f"{where}.stateful",
            f"{dep.kind} has its own promote, fence and lag steps",
            "remove `stateful:` (it is for engines without a kind of their own, as http or tcp)",
        )
    for step, argv in (("promote", dep.state.promote), ("fence", dep.state.fence), ("lag", dep.state.lag)):
        for index, argument in enumerate(argv):
            if any(marker in argument for marker in _TEMPLATE_MARKERS):
                raise ConfigError(
                    graph.source,
                    f"{where}.stateful.{step}[{index}]",
                    f"{argument[:60]!r} looks like a template: depmirror runs each argument as written, "
                    "never through Jinja or a shell",
                    "write the literal argument: each reaches the program exactly as written",
                )


def _check_policy(graph: Graph) -> None:
    w = graph.policy.weights
    total = w.tier + w.frequency + w.impact
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(
            graph.source,
            "policy.weights",
            f"tier + frequency + impact = {total:g}",
            "coefficients that add up to 1 (so weights stay within 0..1)",
        )


def _check_capacity(graph: Graph) -> None:
    capacity = sum(vm.capacity for vm in graph.vms.values())
    needed = sum(dep.replication.min_rf for dep in graph.dependencies.values())
    if needed > capacity:
        raise ConfigError(
            graph.source,
            "vms",
            f"placement cannot be satisfied: the min RFs need {needed} instances, the pool holds {capacity} "
            "(constraint: VM capacity)",
            "raise VM capacity, add VMs, or lower replication.min",
        )
