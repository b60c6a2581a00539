# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

from ansible_collections.depmirror.mirroring.plugins.plugin_utils.library_action import PROMETHEUS_ARGS, STORE_ARGS, LibraryAction

try:
    from depmirror.rollback.decide import RollbackRefused
    from depmirror.rollback.flow import FailbackRefused, SwitchoverRequest, decide_failback, decide_rollback, offsets_of
except ImportError:
    pass  # LibraryAction reports the missing library


class ActionModule(LibraryAction):
    """Decides a switchover (or failback) on the controller, where the library, the store and Prometheus are."""

    ARGUMENT_SPEC = {
        **STORE_ARGS,
        **PROMETHEUS_ARGS,
        "flow": {"type": "str", "default": "rollback", "choices": ["rollback", "failback"]},
        "graph": {"type": "path", "required": True},
        "dependency": {"type": "str", "required": True},
        "instance": {"type": "str", "required": True},
        "candidates": {"type": "list", "elements": "str", "default": []},
        "prometheus_timeout": {"type": "float", "default": 2.0},
        "health_interval": {"type": "float", "default": 5.0},
        "unhealthy_below": {"type": "float"},
        "offsets": {"type": "dict"},
        "max_lag": {"type": "int", "default": 0},
        "hold_seconds": {"type": "float", "default": 0.0},
        "move_primary_back": {"type": "bool", "default": False},
        "trigger": {"type": "dict", "default": {}},
        "action_id": {"type": "str"},
    }

    def act(self, args, result):
        request = SwitchoverRequest(
            graph=args["graph"],
            store=self.store_url(args),
            dependency=args["dependency"],
            instance=args["instance"],
            prometheus_url=args["prometheus_url"],
            prometheus_token=args["prometheus_token"],
            prometheus_timeout=args["prometheus_timeout"],
            health_interval=args["health_interval"],
            unhealthy_below=args["unhealthy_below"],
            candidates=tuple(args["candidates"]),
            offsets=offsets_of(args["offsets"] or {}) or None,
            max_lag=args["max_lag"],
            trigger=args["trigger"],
            action_id=args["action_id"],
        )
        record = not self._task.check_mode
        try:
            if args["flow"] == "rollback":
                decided = decide_rollback(request, record_refusal=record)
            else:
                decided = decide_failback(
                    request, hold_s=args["hold_seconds"], move_primary_back=args["move_primary_back"],
                    record_refusal=record,
                )
        except RollbackRefused as refused:
            result.update(failed=True, refused=True, msg=f"refused: {refused.decision.reason}",
                          decision=refused.decision.to_dict())
            return
        except FailbackRefused as refused:
            result.update(failed=True, refused=True, msg=f"refused: {refused}")
            return
        result.update(changed=False, refused=False, **{args["flow"]: decided})
