# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: rollback_target
short_description: Decide a depmirror switchover or failback from the state store and live health
version_added: 0.1.0
description:
  - For O(flow=rollback), picks the instance that takes over from a failed primary - the healthiest healthy
    instance, another zone preferred; never an unhealthy, degraded or unknown one, and for Redis never a
    replica further behind than O(max_lag) - and returns the dependency list with the switch applied, for
    the C(nginx_upstream) role.
  - For O(flow=failback), checks that a recovered instance is healthy and that the hold time since its
    rollback is over, and returns the dependency list with it back as a mirror (or primary).
  - When nothing may take over, or the failback may not happen yet, the task fails with the reason for each
    candidate and appends a C(refused) event to the rollback history; nothing else is changed.
  - What runs now comes from the state store (the plan C(adjust.yml) applied, and the primaries); health
    comes from Prometheus through the depmirror health library.
  - Runs on the controller (it is an action plugin).
author:
  - depmirror developers (@depmirror)
extends_documentation_fragment:
  - depmirror.mirroring.attributes
  - depmirror.mirroring.requirements
  - depmirror.mirroring.common.STORE
  - depmirror.mirroring.common.PROMETHEUS
attributes:
  check_mode:
    support: full
    details: Decides the same way; a refusal is not recorded.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: A refusal appends an event each time.
  action:
    support: full
    details: Runs on the controller, where the library, the state store and Prometheus are.
options:
  flow:
    description: Which decision.
    type: str
    choices: [rollback, failback]
    default: rollback
  graph:
    description: The dependency graph file.
    type: path
    required: true
  dependency:
    description: The dependency to switch over or fail back.
    type: str
    required: true
  instance:
    description: The failed instance (rollback) or the recovered one (failback), as C(host) or C(dependency@host).
    type: str
    required: true
  candidates:
    description: Instances someone already verified as healthy targets (the runner's); when set, no other is a target.
    type: list
    elements: str
    default: []
  prometheus_timeout:
    description: Seconds to wait for Prometheus.
    type: float
    default: 2.0
  health_interval:
    description: The probes' scrape interval in seconds; the verdict spans the newest samples at this step.
    type: float
    default: 5.0
  unhealthy_below:
    description: Health scores below this are unhealthy; defaults to the graph's C(policy.health.unhealthy).
    type: float
  offsets:
    description: Redis replication offsets per surviving host, as read on the hosts; enables the lag check.
    type: dict
  max_lag:
    description: How many bytes a Redis replica may be behind the most advanced survivor and still be promoted.
    type: int
    default: 0
  hold_seconds:
    description: For failback, the seconds that must pass after the instance's rollback.
    type: float
    default: 0.0
  move_primary_back:
    description: For failback, also make the recovered instance the primary again.
    type: bool
    default: false
  trigger:
    description: What set it off (alert fingerprint, user, AWX job), recorded with a refusal.
    type: dict
    default: {}
  action_id:
    description: The runner's action id, recorded with a refusal.
    type: str
"""

EXAMPLES = r"""
---
- name: Decide who takes over from the failed primary
  depmirror.mirroring.rollback_target:
    graph: /etc/depmirror/graph.yml
    state_store: sqlite:////var/lib/depmirror/depmirror.db
    dependency: catalog-api
    instance: catalog-api@vm-b2
    prometheus_url: http://prometheus:9090
  register: decided

- name: Show the target
  ansible.builtin.debug:
    msg: "{{ decided.rollback.target.host }}: {{ decided.rollback.reason }}"
"""

RETURN = r"""
rollback:
  description:
    - The switchover (O(flow=rollback)) - C(failed) and C(target) (host, zone, address, port), C(survivors)
      and C(replicas) (hosts), C(decision) (every candidate and why), C(reason), C(after) (the dependency
      after the switch), C(dependencies) (every dependency, for the upstreams), C(inputs) (health values and
      queries), C(started) (epoch seconds).
  returned: success and flow is rollback
  type: dict
failback:
  description:
    - The failback (O(flow=failback)) - C(primary), C(recovered), C(new_primary), C(replicas), C(reason),
      C(after), C(dependencies), C(inputs), C(started).
  returned: success and flow is failback
  type: dict
refused:
  description: Whether the decision was a refusal (the task then fails).
  returned: always
  type: bool
decision:
  description: For a refused rollback, every candidate and why it may not take over.
  returned: when refused
  type: dict
"""
