# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

from ansible_collections.depmirror.mirroring.plugins.plugin_utils.library_action import STORE_ARGS, LibraryAction

try:
    from depmirror.rollback.flow import record_routing
except ImportError:
    pass  # LibraryAction reports the missing library


class ActionModule(LibraryAction):
    """Writes the state store on the controller, where it lives."""

    ARGUMENT_SPEC = {
        **STORE_ARGS,
        "dependency": {"type": "dict", "required": True},
    }

    def act(self, args, result):
        store = self.store_url(args)
        if not self._task.check_mode:
            record_routing(store, args["dependency"])
        result.update(changed=True)
