# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
name: graph
short_description: The depmirror replication plan as hosts, groups and hostvars
version_added: 0.1.0
description:
  - Reads a depmirror dependency graph (the dependencies, the services that call them, zones, the VM pool
    and the load balancers), computes the replication plan (weight, replication factor, mode and placement of
    every dependency) and adds every VM and load balancer as a host.
  - "Groups: C(depmirror_vms), C(depmirror_load_balancers), one per zone (C(zone_<zone>)), one per
    dependency (C(dep_<dependency>)) holding its primary in a child group C(dep_<dependency>_primary), and
    C(primaries), C(mirrors), C(standbys). Names have C(-) and C(.) replaced by C(_). The mirrors or
    standbys of one dependency are the pattern C(dep_<dependency>:!dep_<dependency>_primary) (not
    C(dep_<dependency>:&mirrors): that VM may be the mirror of another dependency)."
  - "Hostvars of every VM: C(depmirror_zone), C(depmirror_address), C(depmirror_capacity) and
    C(depmirror_instances), the instances the VM should run, each with C(dependency), C(kind), C(role), C(port),
    C(mode), C(weight), C(replication_factor) and C(health) (a score from 0 to 1, or null when unknown)."
  - "Hostvars of every load balancer: C(depmirror_zone), C(depmirror_address), and from the
    C(depmirror_load_balancers) group C(depmirror_routing) (the graph's C(policy.routing)). The routes
    themselves come from the plan: the C(nginx_upstream) role runs C(depmirror.mirroring.plan) when it is not
    given them."
  - "On C(all): C(depmirror_graph_file), C(depmirror_state_store) and C(depmirror_unhealthy_below)."
  - "Why so lean: C(ansible-inventory --list) prints every group variable again in each member host, and a
    fleet of 10,000 dependencies is already about 30,000 instances (see docs/performance.md)."
  - The file must end in C(.depmirror.yml) or C(.depmirror.yaml).
  - When the state store holds what runs now (written by C(adjust.yml) and C(rollback.yml)), the plan keeps
    current primaries and placements; without it the plan starts from nothing.
  - When O(prometheus_url) is set, instance health comes from Prometheus; if Prometheus cannot be reached
    the inventory is still built, health is C(unknown) and a warning says so.
  - "Fails the run (C(ansible-inventory) and C(ansible-playbook) exit non-zero) when the depmirror library is
    missing, the graph cannot be read or the state store cannot be reached, whatever C(any_unparsed_is_failed)
    and C(unparsed_is_failed) say in C(ansible.cfg): an empty inventory would let a playbook or an AWX
    inventory sync succeed on nothing."
author:
  - depmirror developers (@depmirror)
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
  - depmirror.mirroring.requirements
options:
  plugin:
    description: Marks this file as a source for this plugin.
    required: true
    type: str
    choices: [depmirror.mirroring.graph, graph]
  graph:
    description:
      - Path of the dependency graph file (see docs/graph.md). A relative path is taken from the directory
        of this inventory file.
    required: true
    type: str
  state_store:
    description:
      - The depmirror state store holding what runs now (current primaries, applied plan, recent replication
        decisions), as a path to an SQLite file or an C(sqlite:///path) URL. A relative path is taken from
        the directory of this inventory file. A missing file means nothing runs yet.
    type: str
    env:
      - name: DEPMIRROR_STORE
  prometheus_url:
    description:
      - Base URL of the Prometheus whose data gives each instance's health score. Unset means health is
        C(unknown) for every instance.
    type: str
    env:
      - name: DEPMIRROR_PROMETHEUS_URL
  prometheus_token:
    description:
      - Bearer token for Prometheus. Set it through the environment (an AWX credential type can inject it)
        rather than in the file.
    type: str
    env:
      - name: DEPMIRROR_PROMETHEUS_TOKEN
  prometheus_timeout:
    description: Seconds to wait for each Prometheus query before health is taken as C(unknown).
    type: float
    default: 5.0
"""

EXAMPLES = r"""
---
# inventories/example/fleet.depmirror.yml
plugin: depmirror.mirroring.graph
graph: graph.yml
state_store: ../../depmirror.db
# Add your own groups and variables on top, as with ansible.builtin.constructed:
keyed_groups:
  - key: depmirror_zone
    prefix: az
compose:
  ansible_user: "'root'"
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: /tmp/depmirror-inventory-cache
cache_timeout: 60

# Then: ansible-inventory -i inventories/example/fleet.depmirror.yml --graph
"""

import os

from ansible import constants as C
from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.display import Display
from ansible_collections.depmirror.mirroring.plugins.plugin_utils.library_install import missing_library

try:
    from depmirror.errors import DepmirrorError
    from depmirror.fleet.planning import build_inventory
    from depmirror.store import StoreError
except ImportError as _import_error:  # the library is installed beside ansible-core, see README
    DEPMIRROR_IMPORT_ERROR = _import_error
else:
    DEPMIRROR_IMPORT_ERROR = None

display = Display()


def _fatal(message):
    """An AnsibleParserError that fails the run, not just this source.

    ansible-core's InventoryManager.parse_source catches whatever a plugin's parse() raises (AnsibleError or
    any other Exception alike), shows it as a warning, and fails only when INVENTORY_ANY_UNPARSED_IS_FAILED
    (`[inventory] any_unparsed_is_failed`, false by default) is set; otherwise the run goes on with an empty
    inventory. The manager reads that setting right after every enabled plugin has tried this source, and no
    other plugin parses a file with a `plugin:` key (`yaml` refuses plugin configurations, `ini` rejects the
    `plugin:` line), so turning it on here fails the run on this source and on no other.
    """
    C.INVENTORY_ANY_UNPARSED_IS_FAILED = True
    return AnsibleParserError(message)


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "depmirror.mirroring.graph"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith((".depmirror.yml", ".depmirror.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        if DEPMIRROR_IMPORT_ERROR is not None:
            message = f"{path}: plugin {self.NAME}: {missing_library()}"
            raise _fatal(message) from DEPMIRROR_IMPORT_ERROR
        try:
            self._read_config_data(path)
        except Exception as e:
            raise _fatal(f"{path}: depmirror could not read its options") from e
        document = self._cached_or_built(path, cache)
        self._populate(document)

    def _cached_or_built(self, path, cache):
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        if use_cache:
            try:
                return self._cache[cache_key]
            except KeyError:
                pass
        document = self._build(path)
        if self.get_option("cache"):
            self._cache[cache_key] = document
        return document

    def _build(self, path):
        base = os.path.dirname(os.path.abspath(path))
        graph = os.path.join(base, self.get_option("graph"))
        store = self.get_option("state_store")
        if store and "://" not in store:
            store = os.path.join(base, store)
        try:
            document = build_inventory(
                graph,
                store=store,
                prometheus_url=self.get_option("prometheus_url"),
                prometheus_token=self.get_option("prometheus_token"),
                prometheus_timeout=self.get_option("prometheus_timeout"),
            )
        except StoreError as e:
            # Ansible prints the cause after the message; it names what failed and the fix: the store (never its
            # password), or the graph file and the field inside it.
            raise _fatal(f"{path}: state_store: depmirror could not read the state store") from e
        except DepmirrorError as e:
            raise _fatal(f"{path}: graph: depmirror could not build the inventory from the graph") from e
        except Exception as e:
            raise _fatal(f"{path}: depmirror failed building the inventory from {graph}, a bug to report") from e
        for warning in document.get("warnings", []):
            display.warning(f"{path}: {warning}")
        return document

    def _populate(self, document):
        inventory = self.inventory
        for group, spec in document["groups"].items():
            inventory.add_group(group)
            for name, value in spec.get("vars", {}).items():
                inventory.set_variable(group, name, value)
        for group, spec in document["groups"].items():
            for child in spec.get("children", []):
                inventory.add_child(group, child)
        strict = self.get_option("strict")
        for host, hostvars in document["hosts"].items():
            inventory.add_host(host)
            for name, value in hostvars.items():
                inventory.set_variable(host, name, value)
            self._set_composite_vars(self.get_option("compose"), hostvars, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host, strict=strict)
        for group, spec in document["groups"].items():
            for host in spec.get("hosts", []):
                inventory.add_child(group, host)
        for name, value in document.get("all_vars", {}).items():
            inventory.set_variable("all", name, value)
