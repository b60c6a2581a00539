# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

from ansible_collections.depmirror.mirroring.plugins.plugin_utils.library_action import STORE_ARGS, LibraryAction

try:
    from depmirror.fleet.rollback_history import record_event
except ImportError:
    pass  # LibraryAction reports the missing library

KINDS = ["rollback", "failback", "rf_change", "refused", "interrupted", "alert_ignored", "alert_suppressed"]


class ActionModule(LibraryAction):
    """Appends to the history on the controller, where the state store is."""

    ARGUMENT_SPEC = {
        **STORE_ARGS,
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

    def act(self, args, result):
        store = self.store_url(args)
        fields = {k: v for k, v in args.items() if k != "state_store"}
        if self._task.check_mode:
            result.update(changed=True, event={k: v for k, v in fields.items() if v is not None})
            return
        result.update(changed=True, event=record_event(store, fields))
