# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

try:
    from depmirror.errors import DepmirrorError
    from depmirror.rollback_flow import record_routing
except ImportError as _import_error:
    DEPMIRROR_IMPORT_ERROR = _import_error
else:
    DEPMIRROR_IMPORT_ERROR = None


class ActionModule(ActionBase):
    """Writes the state store on the controller, where it lives."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    _ARGUMENT_SPEC = {
        "dependency": {"type": "dict", "required": True},
        "state_store": {"type": "str"},
    }

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if DEPMIRROR_IMPORT_ERROR is not None:
            raise AnsibleActionFail(
                "the depmirror Python library is not importable on the controller "
                "(fix: pip install depmirror into the Python that runs ansible-playbook)"
            ) from DEPMIRROR_IMPORT_ERROR
        _, args = self.validate_argument_spec(argument_spec=self._ARGUMENT_SPEC)
        store = args["state_store"] or os.environ.get("DEPMIRROR_STORE")
        if not store:
            raise AnsibleActionFail("record_routing needs state_store (or DEPMIRROR_STORE in the environment)")
        if not self._task.check_mode:
            try:
                record_routing(store, args["dependency"])
            except DepmirrorError as e:
                raise AnsibleActionFail(str(e)) from e
        result.update(changed=True)
        return result
