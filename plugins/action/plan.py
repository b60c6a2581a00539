# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

from ansible_collections.depmirror.mirroring.plugins.plugin_utils.library_action import PROMETHEUS_ARGS, STORE_ARGS, LibraryAction

try:
    from depmirror.fleet.applied import part_to_apply
    from depmirror.fleet.planning import plan_for_playbook
except ImportError:
    pass  # LibraryAction reports the missing library


class ActionModule(LibraryAction):
    """Computes the plan on the controller: the library lives there, not on the managed hosts."""

    ARGUMENT_SPEC = {
        **STORE_ARGS,
        **PROMETHEUS_ARGS,
        "graph": {"type": "path", "required": True},
        "prometheus_timeout": {"type": "float", "default": 5.0},
        "applied_on": {"type": "list", "elements": "str"},
    }

    def act(self, args, result):
        plan, warnings = plan_for_playbook(
            args["graph"],
            store=self.store_url(args, required=False),
            prometheus_url=args["prometheus_url"],
            prometheus_token=args["prometheus_token"],
            prometheus_timeout=args["prometheus_timeout"],
        )
        result.update(changed=False, plan=plan, warnings=warnings)
        if args["applied_on"] is not None:
            result["applied"] = part_to_apply(self.store_url(args, required=False), plan, args["applied_on"])
