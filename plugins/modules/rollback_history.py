# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: rollback_history
short_description: Append an event to the depmirror rollback history
version_added: 0.1.0
description:
  - Appends one event (a rollback, failback, replication-factor change, refused or interrupted action) to the
    rollback history in the depmirror state store, durably (it is on disk when the task returns), so that
    playbooks run by AWX or by hand leave the same record as the runner.
  - The history is append-only; each call adds exactly one event.
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
    details: In check mode nothing is written and the task reports C(changed).
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every call appends one event, as a log does.
  action:
    support: full
    details: Runs on the controller, where the state store is.
options:
  kind:
    description: What happened.
    type: str
    required: true
    choices: [rollback, failback, rf_change, refused, interrupted, alert_ignored, alert_suppressed]
  dependency:
    description: The dependency concerned.
    type: str
    required: true
  outcome:
    description: How it ended, e.g. C(succeeded), C(failed), C(refused).
    type: str
    required: true
  instance:
    description: The instance (VM host name) the event is about, e.g. the failed primary.
    type: str
  target:
    description: The instance traffic moved to.
    type: str
  action:
    description: The action taken, e.g. C(switchover).
    type: str
  trigger:
    description:
      - "What set it off, e.g. C({type: alert, fingerprint: ...}), C({type: user, name: ...}) or C({type: awx, job: 42})."
    type: dict
  inputs:
    description: What the decision saw (health scores and the queries behind them).
    type: dict
  decision:
    description: The decision in words.
    type: str
  reason:
    description: Why.
    type: str
  duration_s:
    description: How long the action took, in seconds.
    type: float
  details:
    description: Anything else worth keeping (JSON-able).
    type: dict
  set_primary:
    description:
      - For a succeeded C(rollback) or C(failback), the instance that is now primary; it is recorded as the
        dependency's primary in the same store.
    type: str
"""

EXAMPLES = r"""
---
- name: Record the switchover
  depmirror.mirroring.rollback_history:
    kind: rollback
    dependency: payments-api
    instance: vm-a1
    target: vm-b1
    action: switchover
    outcome: succeeded
    trigger: {type: awx, job: "{{ awx_job_id | default('') }}"}
    reason: primary vm-a1 failing (health 0.0 over 3 samples)
    set_primary: vm-b1
"""

RETURN = r"""
event:
  description: The event as stored, with its C(id) and C(time). In check mode, the event that would be stored, without C(id).
  returned: success
  type: dict
"""
