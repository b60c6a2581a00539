"""`depmirror lab` says what is wrong before it touches anything: not root, or a tool missing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest


def test_up_as_non_root_fails_with_a_clear_error(lab_cli: Any) -> None:
    # A user namespace without a mapping makes the very same process non-root (uid 65534).
    done = lab_cli("lab", "up", prefix=("unshare", "--user"))

    assert done.returncode == 2
    assert "needs root" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_binaries_name_the_debian_packages(lab_cli: Any, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the root check comes first; the test above covers that path")
    env = dict(os.environ, PATH=str(tmp_path))

    done = lab_cli("lab", "up", env=env)

    assert done.returncode == 2
    assert "apt-get install" in done.stderr
    for package in ("podman", "runc", "iproute2", "openssh-client"):
        assert package in done.stderr
