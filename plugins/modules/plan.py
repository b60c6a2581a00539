# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: plan
short_description: Compute the depmirror replication plan for a playbook
version_added: 0.1.0
description:
  - Loads the dependency graph, what runs now (from the state store) and, when configured, health from
    Prometheus, and returns the replication plan - per dependency its weight, replication factor, mode,
    instances (host, zone, role, port) and the actions (provision, keep, decommission) with their reasons.
  - Runs on the controller (it is an action plugin); it changes nothing.
author:
  - depmirror developers (@depmirror)
extends_documentation_fragment:
  - depmirror.mirroring.attributes
  - depmirror.mirroring.requirements
  - depmirror.mirroring.common.STORE
  - depmirror.mirroring.common.PROMETHEUS
  - depmirror.mirroring.attributes.READ_ONLY
options:
  graph:
    description: Path of the dependency graph file (see docs/graph.md).
    required: true
    type: path
  prometheus_timeout:
    description: Seconds to wait for each Prometheus query.
    type: float
    default: 5.0
  applied_on:
    description:
      - The hosts this run applies the plan on, when it does not reach every host (C(ansible-playbook --limit),
        AWX's limit prompt); C(playbooks/adjust.yml) passes its play's hosts after the limit.
      - The plan is still the whole fleet's; the result's C(applied) is the part of it those hosts get, the
        other hosts keeping what the state store records. A dependency whose primary is new or moves on a
        host outside the list waits whole, and a decommission waits unless every load balancer is in the
        list (both are listed in C(applied.held_back)).
    type: list
    elements: str
    version_added: 0.1.0
"""

EXAMPLES = r"""
---
- name: Compute the plan
  depmirror.mirroring.plan:
    graph: "{{ playbook_dir }}/../inventories/example/graph.yml"
  register: depmirror_plan

- name: Show the replication factor of payments-api
  ansible.builtin.debug:
    msg: "{{ (depmirror_plan.plan.dependencies | selectattr('name', 'equalto', 'payments-api') | first).replication_factor }}"
"""

RETURN = r"""
plan:
  description: The plan, as C(depmirror plan --format json) prints it.
  returned: success
  type: dict
  contains:
    dependencies:
      description: One item per dependency with C(name), C(weight), C(replication_factor), C(mode), C(kind),
        C(port), C(instances) (each C(host), C(zone), C(role), C(port), C(address)) and C(actions).
      type: list
      elements: dict
applied:
  description:
    - The part of C(plan) that the hosts in O(applied_on) get (the same shape, plus C(held_back)); the
      whole plan when they are every host of the plan and of the state store's record.
  returned: when O(applied_on) is set
  type: dict
  contains:
    held_back:
      description: The actions this run leaves for a run that reaches their hosts, each with its C(reason).
      type: list
      elements: dict
warnings:
  description: Why health is unknown, when Prometheus could not be asked.
  returned: success
  type: list
  elements: str
"""
