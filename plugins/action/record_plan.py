# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

from ansible_collections.depmirror.mirroring.plugins.plugin_utils.library_action import STORE_ARGS, LibraryAction

try:
    from depmirror.fleet.applied import record_applied_plan
except ImportError:
    pass  # LibraryAction reports the missing library


class ActionModule(LibraryAction):
    """Writes the state store on the controller, where it lives."""

    _supports_diff = True
    ARGUMENT_SPEC = {
        **STORE_ARGS,
        "plan": {"type": "dict", "required": True},
        "applied_on": {"type": "list", "elements": "str"},
    }

    def act(self, args, result):
        recorded = record_applied_plan(
            self.store_url(args), args["plan"], reached=args["applied_on"], dry_run=self._task.check_mode
        )
        result.update(
            changed=recorded.changed,
            held_back=recorded.held_back,
            primaries=recorded.primaries,
            rf_changes={name: list(change) for name, change in recorded.rf_changes.items()},
        )
        if self._task.diff and recorded.changed:
            result["diff"] = {"before": recorded.before, "after": recorded.after}
