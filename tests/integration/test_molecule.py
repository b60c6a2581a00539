"""The collection's molecule scenarios (extensions/molecule/*), each through scripts/molecule.sh as CI runs them.

One xdist group: the scenarios run on one worker, beside the other tests, and never twice at a time (their
container names are fixed). Each scenario's container has no network, so they do not touch the lab.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.parent.name for p in (ROOT / "extensions" / "molecule").glob("*/molecule.yml"))
TIMEOUT_S = 900

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("molecule")]


def test_every_scenario_directory_is_found() -> None:
    assert {"mirror", "nginx_upstream"} <= set(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_passes(scenario: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("molecule scenarios run rootful podman containers: needs root")
    if shutil.which("podman") is None:
        pytest.skip("molecule scenarios need podman")
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "molecule.sh"), scenario],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    tail = "\n".join((result.stdout + result.stderr).splitlines()[-80:])
    assert result.returncode == 0, f"molecule test -s {scenario} failed:\n{tail}"
    assert f"molecule.sh: {scenario}: passed" in result.stdout
