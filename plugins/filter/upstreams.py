# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
name: upstreams
short_description: Nginx upstreams from the depmirror plan
version_added: 0.1.0
description:
  - Turns the plan's dependencies into one upstream each, as the C(nginx_upstream) role renders them -
    which instances serve, their weights from health, which are C(backup) (standbys in active-passive).
  - Fails when a dependency has no instance, or no healthy serving instance, so that such an upstream never
    reaches nginx.
author:
  - depmirror developers (@depmirror)
extends_documentation_fragment:
  - depmirror.mirroring.requirements
options:
  _input:
    description: The plan's C(dependencies) list, as the C(depmirror.mirroring.plan) module returns it.
    type: list
    elements: dict
    required: true
  routing:
    description: Routing policy (C(max_fails), C(fail_timeout), C(connect_timeout), C(read_timeout), C(proxy_next_upstream)).
    type: dict
    default: {}
  unhealthy_below:
    description: Instances with a health score below this are left out; unknown health stays in.
    type: float
    default: 0.5
"""

EXAMPLES = r"""
---
- name: Compute the plan
  depmirror.mirroring.plan:
    graph: "{{ depmirror_graph_file }}"
  register: depmirror_plan

- name: Show which servers would serve payments-api
  ansible.builtin.debug:
    msg: >-
      {{ (depmirror_plan.plan.dependencies | selectattr('name', 'equalto', 'payments-api')
          | depmirror.mirroring.upstreams(depmirror_routing))[0].servers }}
"""

RETURN = r"""
_value:
  description:
    - One item per dependency, sorted by name, with C(name) (the nginx upstream name), C(dependency),
      C(block) (C(http) or C(stream)), C(listen_port), C(mode), C(routing) and C(servers) (each C(address),
      C(port), C(host), C(role), C(weight), C(backup), C(health)).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.depmirror.mirroring.plugins.plugin_utils.library_install import missing_library

try:
    from depmirror.views.upstreams import RoutingError, build_upstreams
except ImportError as _import_error:
    DEPMIRROR_IMPORT_ERROR = _import_error
else:
    DEPMIRROR_IMPORT_ERROR = None


def upstreams(dependencies, routing=None, unhealthy_below=0.5):
    if DEPMIRROR_IMPORT_ERROR is not None:
        raise AnsibleFilterError(missing_library()) from DEPMIRROR_IMPORT_ERROR
    if not isinstance(dependencies, list) or not all(isinstance(d, dict) for d in dependencies):
        raise AnsibleFilterError(f"upstreams expects a list of dependency dicts, got {type(dependencies).__name__}")
    if routing is not None and not isinstance(routing, dict):
        raise AnsibleFilterError(f"upstreams: routing must be a dict, got {type(routing).__name__}")
    try:
        return [u.to_dict() for u in build_upstreams(dependencies, routing, float(unhealthy_below))]
    except RoutingError as e:
        raise AnsibleFilterError(str(e)) from e
    except (KeyError, TypeError, ValueError) as e:
        raise AnsibleFilterError(f"upstreams: a dependency item is missing or has a wrong field: {e!r}") from e


class FilterModule:
    def filters(self):
        return {"upstreams": upstreams}
