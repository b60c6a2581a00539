"""Finding the programs an action runs: beside the runner's own Python first (its venv), then PATH.

A runner started by absolute path from a venv (systemd's ExecStart) has no venv on PATH; looking there
alone made every rollback fail with rc 127."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def find_tool(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)
