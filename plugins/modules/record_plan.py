# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: record_plan
short_description: Record an applied depmirror plan in the state store
version_added: 0.1.0
description:
  - Stores the plan that a playbook has just applied - instances, primaries and the memory the replication
    factor's hysteresis needs - so that the next plan, the inventory plugin and the runner see what runs.
  - Appends an C(rf_change) event to the rollback history for every dependency whose replication factor changed.
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
    details: Reports whether the store would change, and writes nothing.
  diff_mode:
    support: full
  idempotent:
    support: full
  action:
    support: full
    details: Runs on the controller, where the depmirror library and the state store are.
options:
  plan:
    description: The plan as returned by M(depmirror.mirroring.plan) (its C(plan) key).
    required: true
    type: dict
  applied_on:
    description:
      - The hosts the plan was applied on, when the run did not reach every host (C(--limit), AWX's limit
        prompt, hosts that failed), the store records the plan on those hosts only and keeps what it
        recorded for the others, with the rules of
        O(depmirror.mirroring.plan#module:applied_on).
      - Unset, the whole plan is recorded.
    type: list
    elements: str
    version_added: 0.1.0
"""

EXAMPLES = r"""
---
- name: Record the plan that was applied
  depmirror.mirroring.record_plan:
    plan: "{{ depmirror_plan.plan }}"
    state_store: /var/lib/depmirror/depmirror.db
"""

RETURN = r"""
held_back:
  description: What the run left for a run that reaches those hosts (see O(applied_on)), each with its C(reason).
  returned: success
  type: list
  elements: dict
primaries:
  description: The primary host of every dependency, as recorded.
  returned: success
  type: dict
rf_changes:
  description: Dependencies whose replication factor changed, with C([old, new]).
  returned: success
  type: dict
"""
