# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations


class ModuleDocFragment:
    # What the controller needs for every plugin that calls the depmirror library: the modules (through their
    # action plugins), the inventory plugin and the filters. The Python version is pyproject.toml's
    # requires-python and the distribution its [project].name (tests/unit/test_release_metadata.py checks both).
    DOCUMENTATION = r"""
options: {}
requirements:
  - >-
    depmirror-mirroring (the depmirror library, this collection's version) in the Python that runs Ansible on
    the controller: C(python -m pip install -r <collection>/requirements.txt). Without it, the error prints the
    full command.
  - Python 3.11 or later on the controller.
"""

    # For a module that runs on the target instead (nginx_release): it needs nothing of the library there.
    NGINX_TARGET = r"""
options: {}
requirements:
  - On the target, nginx run by systemd; the module does not need the depmirror library there.
"""
