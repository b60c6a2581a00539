# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

try:
    from depmirror.traffic import check_traffic
except ImportError as _import_error:
    DEPMIRROR_IMPORT_ERROR = _import_error
else:
    DEPMIRROR_IMPORT_ERROR = None


class ActionModule(ActionBase):
    """Checks from the controller, in-process: a module round trip would cost more than the check."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    _ARGUMENT_SPEC = {
        "kind": {"type": "str", "required": True},
        "address": {"type": "str", "required": True},
        "port": {"type": "int", "required": True},
        "expect": {"type": "str"},
        "forbid": {"type": "str"},
        "requests": {"type": "int", "default": 10},
        "deadline": {"type": "float", "default": 3.0},
    }

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if DEPMIRROR_IMPORT_ERROR is not None:
            raise AnsibleActionFail(
                "the depmirror Python library is not importable on the controller "
                "(fix: pip install depmirror into the Python that runs ansible-playbook)"
            ) from DEPMIRROR_IMPORT_ERROR
        _, args = self.validate_argument_spec(argument_spec=self._ARGUMENT_SPEC)
        if self._task.check_mode:
            result.update(changed=False, skipped=True, msg="no traffic is checked in check mode")
            return result
        check = check_traffic(
            args["kind"], args["address"], args["port"], expect=args["expect"], forbid=args["forbid"],
            requests=args["requests"], deadline_s=args["deadline"],
        )
        result.update(changed=False, check=check.to_dict())
        if not check.ok:
            result.update(
                failed=True,
                msg=f"traffic through {args['address']}:{args['port']} is not right: {check.detail}",
            )
        return result
