# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
name: host_instances
short_description: The instances one VM should run, or stop, according to the depmirror plan
version_added: 0.1.0
description:
  - From the plan returned by M(depmirror.mirroring.plan), the instances that O(host) should run (primaries
    first, since a Redis replica needs its primary), or with O(decommissioned=true) those the plan takes away
    from it.
  - Each item carries what the C(mirror) role needs - C(dependency), C(kind), C(port), C(role), C(command),
    C(health_path), C(primary_address), C(primary_port) (decommissioned items carry C(dependency), C(kind),
    C(port), C(role) and C(reason)).
author:
  - depmirror developers (@depmirror)
extends_documentation_fragment:
  - depmirror.mirroring.requirements
options:
  _input:
    description: The plan (the C(plan) key of M(depmirror.mirroring.plan)'s result).
    type: dict
    required: true
  host:
    description: The VM's inventory name.
    type: str
    required: true
  decommissioned:
    description: Return the instances to take away instead of those to run.
    type: bool
    default: false
"""

EXAMPLES = r"""
---
- name: Deploy what this VM should run
  ansible.builtin.include_role:
    name: depmirror.mirroring.mirror
  vars:
    mirror_dependency: "{{ item.dependency }}"
    mirror_kind: "{{ item.kind }}"
    mirror_port: "{{ item.port }}"
    mirror_role: "{{ item.role }}"
  loop: "{{ depmirror_plan.plan | depmirror.mirroring.host_instances(inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: One item per instance, as described above.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.depmirror.mirroring.plugins.plugin_utils.library_install import missing_library

try:
    from depmirror.views.host_instances import decommissions_for_host, instances_for_host
except ImportError as _import_error:
    DEPMIRROR_IMPORT_ERROR = _import_error
else:
    DEPMIRROR_IMPORT_ERROR = None


def host_instances(plan, host, decommissioned=False):
    if DEPMIRROR_IMPORT_ERROR is not None:
        raise AnsibleFilterError(missing_library()) from DEPMIRROR_IMPORT_ERROR
    if not isinstance(plan, dict) or not isinstance(plan.get("dependencies"), list):
        raise AnsibleFilterError("host_instances expects the plan dict (with a 'dependencies' list) as its input")
    if not isinstance(host, str):
        raise AnsibleFilterError(f"host_instances: host must be a string, got {type(host).__name__}")
    try:
        if decommissioned:
            return decommissions_for_host(plan, host)
        return instances_for_host(plan, host)
    except (KeyError, TypeError) as e:
        raise AnsibleFilterError(f"host_instances: the plan is missing a field: {e!r}") from e


class FilterModule:
    def filters(self):
        return {"host_instances": host_instances}
