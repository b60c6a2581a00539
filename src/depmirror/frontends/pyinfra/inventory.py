"""The inventory plugin's document (`views.inventory`) as a pyinfra Inventory: the same hosts, groups and data.

pyinfra groups are flat, so a group holds its Ansible children's hosts too (`dep_<name>` includes its
primary, as `ansible -m ping dep_<name>` would reach it). Group variables stay group data and the `all`
variables are the inventory's global data, so `host.data.<name>` resolves as Ansible's hostvars do.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pyinfra.api import Inventory

from depmirror.rollback.remote import SshOptions


@dataclass(frozen=True, slots=True)
class Connection:
    """How pyinfra reaches every host: the runner's fast path's SSH options, plus a connect timeout."""

    ssh: SshOptions

    def host_data(self, address: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "ssh_hostname": address,
            "ssh_user": self.ssh.user,
            "ssh_port": self.ssh.port,
            "ssh_allow_agent": False,
            # Host keys are checked against known_hosts, never added on the fly (as the fast path does).
            "ssh_strict_host_key_checking": "yes",
            "ssh_connect_retries": 0,
        }
        if self.ssh.key_file:
            data["ssh_key"] = self.ssh.key_file
            data["ssh_look_for_keys"] = False
        if self.ssh.known_hosts:
            data["ssh_known_hosts_file"] = self.ssh.known_hosts
        if self.ssh.become:
            data["_sudo"] = True
        return data


def flattened_groups(document: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each group's hosts, its children's included (depth-first, each host once, in document order)."""
    groups = document["groups"]

    def members(name: str, seen: frozenset[str]) -> list[str]:
        spec = groups.get(name) or {}
        found = list(spec.get("hosts", []))
        for child in spec.get("children", []):
            if child not in seen:
                found += members(child, seen | {child})
        return list(dict.fromkeys(found))

    return {name: members(name, frozenset({name})) for name in groups}


def build_inventory(
    document: Mapping[str, Any], connection: Connection, only: Collection[str] | None = None
) -> Inventory:
    """The pyinfra Inventory of `document` (`fleet.planning.build_inventory`'s), limited to `only` when given."""
    hosts = [h for h in document["hosts"] if only is None or h in only]
    names = [(h, {**document["hosts"][h], **connection.host_data(document["hosts"][h]["ansible_host"])}) for h in hosts]
    kept = set(hosts)
    groups: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for name, members in flattened_groups(document).items():
        inside = [h for h in members if h in kept]
        if inside:
            groups[name] = (inside, dict(document["groups"][name].get("vars", {})))
    return Inventory((names, dict(document.get("all_vars", {}))), **groups)
