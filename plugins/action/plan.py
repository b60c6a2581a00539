# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import os

from ansible_collections.depmirror.mirroring.plugins.plugin_utils.library_action import LibraryAction

try:
    from depmirror.views.inventory import plan_for_playbook
except ImportError:
    pass  # LibraryAction reports the missing library


class ActionModule(LibraryAction):
    """Computes the plan on the controller: the library lives there, not on the managed hosts."""

    ARGUMENT_SPEC = {
        "graph": {"type": "path", "required": True},
        "state_store": {"type": "str"},
        "prometheus_url": {"type": "str"},
        "prometheus_token": {"type": "str", "no_log": True},
        "prometheus_timeout": {"type": "float", "default": 5.0},
    }

    def act(self, args, result):
        plan, warnings = plan_for_playbook(
            args["graph"],
            store=self.store_url(args, required=False),
            prometheus_url=args["prometheus_url"] or os.environ.get("DEPMIRROR_PROMETHEUS_URL"),
            prometheus_token=args["prometheus_token"] or os.environ.get("DEPMIRROR_PROMETHEUS_TOKEN"),
            prometheus_timeout=args["prometheus_timeout"],
        )
        result.update(changed=False, plan=plan, warnings=warnings)
