# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

try:
    from depmirror.errors import DepmirrorError
    from depmirror.history_record import record_event
except ImportError as _import_error:
    DEPMIRROR_IMPORT_ERROR = _import_error
else:
    DEPMIRROR_IMPORT_ERROR = None

KINDS = ["rollback", "failback", "rf_change", "refused", "interrupted", "alert_ignored", "alert_suppressed"]


class ActionModule(ActionBase):
    """Appends to the history on the controller, where the state store is."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    _ARGUMENT_SPEC = {
        "state_store": {"type": "str"},
        "kind": {"type": "str", "required": True, "choices": KINDS},
        "dependency": {"type": "str", "required": True},
        "outcome": {"type": "str", "required": True},
        "instance": {"type": "str"},
        "target": {"type": "str"},
        "action": {"type": "str"},
        "trigger": {"type": "dict"},
        "inputs": {"type": "dict"},
        "decision": {"type": "str"},
        "reason": {"type": "str"},
        "duration_s": {"type": "float"},
        "details": {"type": "dict"},
        "set_primary": {"type": "str"},
    }

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if DEPMIRROR_IMPORT_ERROR is not None:
            raise AnsibleActionFail(
                "the depmirror Python library is not importable on the controller "
                "(fix: pip install depmirror into the Python that runs ansible-playbook)"
            ) from DEPMIRROR_IMPORT_ERROR
        _, args = self.validate_argument_spec(argument_spec=self._ARGUMENT_SPEC)
        store = args.pop("state_store") or os.environ.get("DEPMIRROR_STORE")
        if not store:
            raise AnsibleActionFail("rollback_history needs state_store (or DEPMIRROR_STORE in the environment)")
        if self._task.check_mode:
            result.update(changed=True, event={k: v for k, v in args.items() if v is not None})
            return result
        try:
            event = record_event(store, args)
        except DepmirrorError as e:
            raise AnsibleActionFail(str(e)) from e
        result.update(changed=True, event=event)
        return result
