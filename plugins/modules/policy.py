# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: policy
short_description: Set or clear a run-time policy override of a depmirror dependency
version_added: 0.1.0
description:
  - Sets (O(state=present)) or ends (O(state=absent)) the override of one dependency, or of every dependency
    (C(*)) - its replication factor bounds, its health threshold and its rollback mode
    (C(auto), C(manual), C(shadow), C(frozen)), with who, why and a mandatory expiry of at most 30 days.
  - The planner (the next C(adjust.yml)) and every runner sharing the state store honour it; an expired
    override is ignored and recorded as ended. Every change is an event in the rollback history.
  - The same as C(depmirror policy set|clear) and the runner's C(PUT|DELETE /api/v1/dependencies/NAME/policy).
  - Runs on the controller (it is an action plugin).
author:
  - depmirror developers (@depmirror)
extends_documentation_fragment:
  - depmirror.mirroring.attributes
  - depmirror.mirroring.requirements
  - depmirror.mirroring.common.STORE
attributes:
  check_mode:
    support: full
    details: Reports whether the override in force would change, and writes nothing.
  diff_mode:
    support: full
    details: The override in force before and after.
  idempotent:
    support: full
    details:
      - Unchanged when the override in force says the same with the same O(reason); its expiry is not pushed
        back by running the task again (change the reason, or clear it first, to renew).
  action:
    support: full
    details: Runs on the controller, where the depmirror library and the state store are.
options:
  dependency:
    description: The dependency, or C(*) for every dependency (a dependency's own override wins field by field).
    type: str
    required: true
  state:
    description: C(present) sets the override (replacing the dependency's current one), C(absent) ends it.
    type: str
    choices: [present, absent]
    default: present
  rf_min:
    description: Minimum replication factor (it lifts the graph's maximum with it when higher).
    type: int
  rf_max:
    description: Maximum replication factor.
    type: int
  unhealthy:
    description:
      - Health score (0..1) below which an instance is unhealthy. For C(*), the planner's threshold; for one
        dependency, its rollback target choice.
    type: float
  rollback:
    description:
      - C(auto) acts on alerts; C(manual) holds alerts back for a person (C(depmirror switchover) passes);
        C(shadow) decides and records without acting; C(frozen) holds every alert and switchover back,
        recording the action it would have taken.
    type: str
    choices: [auto, manual, shadow, frozen]
  expires_in:
    description: How long it lasts, e.g. C(30m), C(2h), C(7d); at most C(30d). Required with O(state=present).
    type: str
  reason:
    description: Why; recorded in the history. Required with O(state=present).
    type: str
  created_by:
    description:
      - Who; recorded in the history. Defaults to the controller's user; in an AWX job template, set it to
        C({{ awx_user_name }}).
    type: str
  graph:
    description: The graph file, to check O(dependency) against; without it, the applied plan's dependencies.
    type: path
"""

EXAMPLES = r"""
---
- name: Pin payments-api at three instances for the sale week
  depmirror.mirroring.policy:
    dependency: payments-api
    rf_min: 3
    expires_in: 7d
    reason: sale week (CHG-1234)

- name: Freeze automatic rollback of the ledger during its migration
  depmirror.mirroring.policy:
    dependency: ledger
    rollback: frozen
    expires_in: 2h
    reason: schema migration

- name: Let the ledger roll back again
  depmirror.mirroring.policy:
    dependency: ledger
    state: absent
    reason: migration done
"""

RETURN = r"""
override:
  description: The override in force after the task (in check mode, the one that would be), or null.
  returned: success
  type: dict
  sample:
    id: 4
    dependency: ledger
    rollback: frozen
    rf_min: null
    rf_max: null
    unhealthy: null
    reason: schema migration
    created_by: alice
    created_ts: "2026-11-29T12:00:00+00:00"
    expires_ts: "2026-11-29T14:00:00+00:00"
    ended_ts: null
    end_reason: null
"""
