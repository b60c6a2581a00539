# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations


class ModuleDocFragment:
    # The options every plugin that reads the state store or Prometheus shares, written once; their
    # argument spec (with the same environment fallbacks) is plugin_utils/library_action.py's STORE_ARGS
    # and PROMETHEUS_ARGS, and module_defaults can set them once per play for group/depmirror.mirroring.depmirror.
    STORE = r"""
options:
  state_store:
    description:
      - The state store. A SQLite file (a path, or C(sqlite:////abs/path)) or a PostgreSQL URL
        (C(postgresql://user@host:5432/db), the password from E(PGPASSWORD) or libpq's E(PGPASSFILE), never
        in the URL of a shared config).
      - When unset, the E(DEPMIRROR_STORE) environment variable; AWX injects it from a credential.
    type: str
"""

    PROMETHEUS = r"""
options:
  prometheus_url:
    description:
      - Prometheus base URL for health. When unset, the E(DEPMIRROR_PROMETHEUS_URL) environment variable.
      - Without one, every instance's health is unknown, which never triggers an action by itself.
    type: str
  prometheus_token:
    description: Bearer token for Prometheus. When unset, the E(DEPMIRROR_PROMETHEUS_TOKEN) environment variable.
    type: str
"""
