# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

try:
    from depmirror.errors import DepmirrorError
    from depmirror.inventory import plan_for_playbook
except ImportError as _import_error:
    DEPMIRROR_IMPORT_ERROR = _import_error
else:
    DEPMIRROR_IMPORT_ERROR = None


class ActionModule(ActionBase):
    """Computes the plan on the controller: the library lives there, not on the managed hosts."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    _ARGUMENT_SPEC = {
        "graph": {"type": "path", "required": True},
        "state_store": {"type": "str"},
        "prometheus_url": {"type": "str"},
        "prometheus_token": {"type": "str", "no_log": True},
        "prometheus_timeout": {"type": "float", "default": 5.0},
    }

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if DEPMIRROR_IMPORT_ERROR is not None:
            raise AnsibleActionFail(
                "the depmirror Python library is not importable on the controller "
                "(fix: pip install depmirror into the Python that runs ansible-playbook)"
            ) from DEPMIRROR_IMPORT_ERROR
        _, args = self.validate_argument_spec(argument_spec=self._ARGUMENT_SPEC)
        try:
            plan, warnings = plan_for_playbook(
                args["graph"],
                store=args["state_store"] or os.environ.get("DEPMIRROR_STORE"),
                prometheus_url=args["prometheus_url"] or os.environ.get("DEPMIRROR_PROMETHEUS_URL"),
                prometheus_token=args["prometheus_token"] or os.environ.get("DEPMIRROR_PROMETHEUS_TOKEN"),
                prometheus_timeout=args["prometheus_timeout"],
            )
        except DepmirrorError as e:
            raise AnsibleActionFail(str(e)) from e
        result.update(changed=False, plan=plan, warnings=warnings)
        return result
