# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations


class ModuleDocFragment:
    # Shared attributes, so every module states its check, diff and idempotence support the same way.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation
        indicates no change.
  action:
    description: Indicates this has a corresponding action plugin so some parts can be executed on the controller.
"""

    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: Reads only; it runs the same way in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
  action:
    support: full
    details: Runs on the controller, where the depmirror library is installed.
"""
