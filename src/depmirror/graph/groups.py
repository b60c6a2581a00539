"""The inventory group names a graph gives rise to, and the check that no two of them (or a host) collide.

They live here, below `views/inventory.py` that uses them, so that loading a graph refuses a clash: `depmirror
plan` and the inventory plugin then agree (a VM named `primaries` once made the plugin drop that host and put
every primary in `mirrors`, with rc 0, while `plan` said nothing).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from depmirror.errors import ConfigError
from depmirror.graph.model import Graph

ROLE_GROUPS = {"primary": "primaries", "mirror": "mirrors", "standby": "standbys"}
VM_GROUP = "depmirror_vms"
LOAD_BALANCER_GROUP = "depmirror_load_balancers"
# Ansible's own two groups, then the ones views/inventory.py always adds.
FIXED_GROUPS: tuple[str, ...] = ("all", "ungrouped", VM_GROUP, LOAD_BALANCER_GROUP, *ROLE_GROUPS.values())
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def safe_group(name: str) -> str:
    """Ansible warns on group names that are not Python identifiers; `-` and `.` become `_`."""
    return _UNSAFE.sub("_", name)


def zone_group(zone: str) -> str:
    return f"zone_{safe_group(zone)}"


def dependency_group(dependency: str) -> str:
    return f"dep_{safe_group(dependency)}"


def primary_group(dependency: str) -> str:
    return f"{dependency_group(dependency)}_primary"


def _groups(graph: Graph) -> Iterator[tuple[str, str, str]]:
    """(group, field that gives rise to it, what owns it) for every group of the graph's inventory."""
    for group in FIXED_GROUPS:
        yield group, "", "one of the groups every depmirror inventory has"
    for zone in graph.zones:
        yield zone_group(zone), f"zones.{zone}", f"zone {zone!r}"
    for name in graph.dependencies:
        yield dependency_group(name), f"dependencies.{name}", f"dependency {name!r}"
        yield primary_group(name), f"dependencies.{name}", f"dependency {name!r}"


def check_group_names(graph: Graph) -> None:
    """Refuse two owners of one inventory group, and a host named like a group (Ansible merges or drops them)."""
    owners: dict[str, tuple[str, str]] = {}
    for group, field, owner in _groups(graph):
        first = owners.setdefault(group, (field, owner))
        if first[1] != owner:
            raise ConfigError(
                graph.source,
                field,
                f"its inventory group {group} is also the group of {first[1]} (group names have - and . as _)",
                "rename one of the two",
            )
    hosts = [("vms", host) for host in graph.vms] + [("load_balancers", host) for host in graph.load_balancers]
    for section, host in hosts:
        if host in owners:
            raise ConfigError(
                graph.source,
                f"{section}.{host}",
                f"host name {host!r} is also an inventory group ({owners[host][1]})",
                "rename the host (Ansible cannot tell a host from a group of the same name)",
            )
