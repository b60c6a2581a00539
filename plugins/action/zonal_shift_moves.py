# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

from ansible_collections.depmirror.mirroring.plugins.plugin_utils.library_action import STORE_ARGS, LibraryAction

try:
    from depmirror.fleet.zonal_shift_service import latest_shift_moves
except ImportError:
    pass  # LibraryAction reports the missing library


class ActionModule(LibraryAction):
    """Reads, on the controller where the state store is, what the latest shift of a zone moved."""

    ARGUMENT_SPEC = {
        **STORE_ARGS,
        "zone": {"type": "str", "required": True},
    }

    def act(self, args, result):
        result.update(changed=False, shift=latest_shift_moves(self.store_url(args), args["zone"]))
