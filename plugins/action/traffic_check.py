# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

from ansible_collections.depmirror.mirroring.plugins.plugin_utils.library_action import LibraryAction

try:
    from depmirror.rollback.traffic_check import check_traffic
except ImportError:
    pass  # LibraryAction reports the missing library


class ActionModule(LibraryAction):
    """Checks from the controller, in-process: a module round trip would cost more than the check."""

    ARGUMENT_SPEC = {
        "kind": {"type": "str", "required": True},
        "address": {"type": "str", "required": True},
        "port": {"type": "int", "required": True},
        "expect": {"type": "str"},
        "forbid": {"type": "str"},
        "requests": {"type": "int", "default": 10},
        "deadline": {"type": "float", "default": 3.0},
    }

    def act(self, args, result):
        if self._task.check_mode:
            result.update(changed=False, skipped=True, msg="no traffic is checked in check mode")
            return
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
