# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import getpass

from ansible.errors import AnsibleActionFail
from ansible_collections.depmirror.mirroring.plugins.plugin_utils.library_action import STORE_ARGS, LibraryAction

try:
    from depmirror.fleet.override_store import clear_policy, known_dependencies, set_policy
    from depmirror.fleet.overrides import OverrideError
    from depmirror.graph.load import load_graph
    from depmirror.store.model import utcnow
except ImportError:
    pass  # LibraryAction reports the missing library

SETTINGS = ("rf_min", "rf_max", "unhealthy", "rollback", "expires_in", "reason")


class ActionModule(LibraryAction):
    """Writes the override to the state store on the controller, where it lives."""

    _supports_diff = True
    ARGUMENT_SPEC = {
        **STORE_ARGS,
        "dependency": {"type": "str", "required": True},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "rf_min": {"type": "int"},
        "rf_max": {"type": "int"},
        "unhealthy": {"type": "float"},
        "rollback": {"type": "str", "choices": ["auto", "manual", "shadow", "frozen"]},
        "expires_in": {"type": "str"},
        "reason": {"type": "str"},
        "created_by": {"type": "str"},
        "graph": {"type": "path"},
    }

    def act(self, args, result):
        store = self.store_url(args)
        who = args["created_by"] or self._who()
        dry_run = self._task.check_mode
        if args["state"] == "absent":
            change = clear_policy(
                store, args["dependency"], by=who, reason=args["reason"] or "cleared", now=utcnow(), dry_run=dry_run
            )
        else:
            graph = list(load_graph(args["graph"]).dependencies) if args["graph"] else None
            request = {key: args[key] for key in SETTINGS if args[key] is not None}
            try:
                change = set_policy(
                    store,
                    args["dependency"],
                    request,
                    known=known_dependencies(store, graph),
                    created_by=who,
                    now=utcnow(),
                    dry_run=dry_run,
                    source="ansible",
                )
            except OverrideError as e:
                raise AnsibleActionFail(f"{self._task.action}: {e}") from e
        after = None if change.after is None else change.after.as_dict()
        result.update(changed=change.changed, override=after)
        if self._task.diff and change.changed:
            before = None if change.before is None else change.before.as_dict()
            result["diff"] = {"before": before or {}, "after": after or {}}

    def _who(self):
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "ansible"
