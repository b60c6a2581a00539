"""What ships: the library's wheel and the collection tarball carry the product and nothing of the lab
(a development extra under lab/, issue 15) nor the tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _build_wheel(out: Path) -> list[str]:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("depmirror-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def _build_collection(out: Path) -> list[str]:
    subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
    )
    (tarball,) = out.glob("depmirror-mirroring-*.tar.gz")
    with tarfile.open(tarball) as archive:
        return archive.getnames()


def test_the_wheel_carries_the_library_and_no_lab(tmp_path: Path) -> None:
    names = _build_wheel(tmp_path)
    assert "depmirror/graph/schemas/graph.schema.json" in names
    assert "depmirror/cli/main.py" in names and "depmirror/runner/worker.py" in names
    assert not [n for n in names if "lab" in n.split("/")[0] or n.startswith("depmirror_lab")]
    assert not [n for n in names if n.startswith("tests/") or "/lab/" in n]


def test_the_collection_tarball_carries_no_lab_and_no_tests(tmp_path: Path) -> None:
    names = _build_collection(tmp_path)
    assert "plugins/inventory/graph.py" in names and "roles/nginx_upstream/tasks/main.yml" in names
    assert "src/depmirror/planner/plan.py" in names  # the library, for execution environments
    leaked = [n for n in names if n == "lab" or n.startswith(("lab/", "tests/", "bench/")) or "depmirror_lab" in n]
    assert leaked == []
