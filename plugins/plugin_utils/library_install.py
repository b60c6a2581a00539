# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every plugin says when the depmirror library cannot be imported: the one command that installs it."""

from __future__ import annotations

import os
import shlex
import sys

# The library's distribution name on PyPI (pyproject.toml); the import package is `depmirror`.
DISTRIBUTION = "depmirror-mirroring"

# plugins/plugin_utils/ -> the collection's root, wherever it is installed; requirements.txt pins the library
# there and points pip at the wheel the released collection carries (README.md: Installation).
_COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def install_command():
    """The command that installs the library into the Python running this Ansible, from any directory."""
    requirements = os.path.join(_COLLECTION_ROOT, "requirements.txt")
    return f"{shlex.quote(sys.executable)} -m pip install -r {shlex.quote(requirements)}"


def missing_library():
    """The message for an ImportError of the library (raise it `from` that error: Ansible prints the cause after)."""
    return (
        f"the depmirror Python library ({DISTRIBUTION}) is not importable by {sys.executable}, the Python that "
        f"runs Ansible on the controller (fix: {install_command()})"
    )
