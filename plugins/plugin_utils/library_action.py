# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one base every depmirror action plugin stands on: the library runs on the controller."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.module_utils.basic import env_fallback
from ansible.plugins.action import ActionBase
from ansible_collections.depmirror.mirroring.plugins.plugin_utils.library_install import missing_library

try:
    from depmirror.errors import DepmirrorError
except ImportError as _import_error:
    DEPMIRROR_IMPORT_ERROR = _import_error

    class DepmirrorError(Exception):  # keeps `except DepmirrorError` valid while the library is missing
        pass

else:
    DEPMIRROR_IMPORT_ERROR = None


# The shared options of doc_fragments/common.py (STORE, PROMETHEUS), with the same environment fallbacks.
STORE_ARGS = {"state_store": {"type": "str", "fallback": (env_fallback, ["DEPMIRROR_STORE"])}}
PROMETHEUS_ARGS = {
    "prometheus_url": {"type": "str", "fallback": (env_fallback, ["DEPMIRROR_PROMETHEUS_URL"])},
    "prometheus_token": {"type": "str", "no_log": True, "fallback": (env_fallback, ["DEPMIRROR_PROMETHEUS_TOKEN"])},
}


class LibraryAction(ActionBase):
    """Validates the arguments, turns the library's errors into task failures, and leaves `act` to the plugin.

    Subclasses set `ARGUMENT_SPEC` and implement `act(args, result)`; they run without a connection, on the
    controller, where the depmirror library and the state store are.
    """

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    ARGUMENT_SPEC = {}

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if DEPMIRROR_IMPORT_ERROR is not None:
            raise AnsibleActionFail(missing_library()) from DEPMIRROR_IMPORT_ERROR
        _validation, args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)
        try:
            self.act(args, result)
        except DepmirrorError as e:
            raise AnsibleActionFail(str(e)) from e
        return result

    def act(self, args, result):
        raise NotImplementedError

    def store_url(self, args, required=True):
        """The `state_store` option (DEPMIRROR_STORE when unset, through STORE_ARGS' fallback)."""
        store = args.get("state_store")
        if required and not store:
            raise AnsibleActionFail(f"{self._task.action} needs state_store (or DEPMIRROR_STORE in the environment)")
        return store
