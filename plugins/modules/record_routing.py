# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: record_routing
short_description: Record what the load balancers route for one dependency after a switchover or failback
version_added: 0.1.0
description:
  - Replaces the dependency's entry in the applied plan of the state store, so that the next switchover of
    another dependency re-renders this one as it now is (a fenced instance stays out of its upstream).
  - The planner's state (instances, replication-factor memory) is left alone; the next C(adjust.yml) run
    records a whole plan again.
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
    details: Writes nothing and reports C(changed).
  diff_mode:
    support: none
  idempotent:
    support: none
  action:
    support: full
    details: Runs on the controller, where the state store is.
options:
  dependency:
    description: The dependency as routed now (the C(after) of M(depmirror.mirroring.rollback_target)).
    type: dict
    required: true
"""

EXAMPLES = r"""
---
- name: Record the dependency as it is now routed
  depmirror.mirroring.record_routing:
    dependency: "{{ decided.rollback.after }}"
    state_store: sqlite:////var/lib/depmirror/depmirror.db
"""

RETURN = r"""
changed:
  description: Always true outside check mode.
  returned: always
  type: bool
"""
