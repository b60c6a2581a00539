# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: traffic_check
short_description: Check that traffic through a depmirror load balancer reaches the right instance
version_added: 0.1.0
description:
  - C(http) - sends O(requests) GETs and reads nginx's C(X-Depmirror-Upstream) header; fails if O(forbid)
    served any or O(expect) served none.
  - C(redis) - PING must answer PONG and ROLE must say C(master).
  - Other kinds - the port must accept a connection.
  - Retries until O(deadline) seconds have passed. Runs on the controller, in-process (it is an action plugin).
author:
  - depmirror developers (@depmirror)
extends_documentation_fragment:
  - depmirror.mirroring.attributes
  - depmirror.mirroring.requirements
attributes:
  check_mode:
    support: full
    details: Skipped in check mode, as nothing was switched.
  diff_mode:
    support: none
  idempotent:
    support: full
  action:
    support: full
    details: Connects from the controller.
options:
  kind:
    description: The dependency's kind (C(http), C(redis), C(tcp)).
    type: str
    required: true
  address:
    description: The load balancer's address.
    type: str
    required: true
  port:
    description: The dependency's port on the load balancer.
    type: int
    required: true
  expect:
    description: C(address:port) of the instance that must serve at least one request (C(http)).
    type: str
  forbid:
    description: C(address:port) of the instance that must serve none (C(http)).
    type: str
  requests:
    description: Requests per attempt (C(http)).
    type: int
    default: 10
  deadline:
    description: Seconds to keep trying.
    type: float
    default: 3.0
"""

EXAMPLES = r"""
---
- name: Check that the new primary serves through the load balancer
  depmirror.mirroring.traffic_check:
    kind: http
    address: 198.18.0.2
    port: 8081
    expect: 198.18.0.11:8081
    forbid: 198.18.0.22:8081
"""

RETURN = r"""
check:
  description: C(ok), C(attempts), C(seconds), C(served_by) (upstream addresses or the Redis role) and C(detail).
  returned: success
  type: dict
"""
