# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: zonal_shift_moves
short_description: List what the latest zonal shift of a zone moved
version_added: 0.1.0
description:
  - Reads the depmirror history for the latest zonal shift of O(zone) and lists the instances it moved
    primaries away from, as C(failback.yml -e depmirror_zone=ZONE) fails them back.
  - Fails with a message naming the fix when the zone was never shifted, or when its latest shift has not
    ended (the runner queues the failbacks itself when a shift ends).
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
    details: It only reads.
  diff_mode:
    support: none
  idempotent:
    support: full
  action:
    support: full
    details: Runs on the controller, where the state store is.
options:
  zone:
    description: The zone whose latest shift is read.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: What the shift of zone-a moved
  depmirror.mirroring.zonal_shift_moves:
    zone: zone-a
    state_store: sqlite:////var/lib/depmirror/state.db
  register: moved
"""

RETURN = r"""
shift:
  description: The latest shift of the zone and what it moved.
  returned: success
  type: dict
  contains:
    zone:
      description: The zone.
      type: str
    shift_id:
      description: The shift's id in the store.
      type: int
    started_ts:
      description: When the shift started (ISO 8601).
      type: str
    ended_ts:
      description: When it ended (ISO 8601).
      type: str
    instances:
      description: The instances primaries were moved away from, each C({dependency, instance}).
      type: list
      elements: dict
"""
