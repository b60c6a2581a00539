"""What ships (`make dist`, scripts/dist.sh): the library's wheel and sdist and the collection tarball carry the
product and nothing of the lab (a development extra under lab/, issue 15) nor the tests; the collection carries
the wheel its requirements.txt installs (issue 18)."""

from __future__ import annotations

import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WHEEL = "depmirror_mirroring-*-py3-none-any.whl"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(["bash", str(ROOT / "scripts" / "dist.sh"), str(out)], check=True, capture_output=True, timeout=300)
    return out


def _wheel_names(dist: Path) -> list[str]:
    (wheel,) = dist.glob(WHEEL)
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def _tar_names(tarball: Path) -> list[str]:
    with tarfile.open(tarball) as archive:
        return archive.getnames()


def test_the_wheel_carries_the_library_and_no_lab(dist: Path) -> None:
    names = _wheel_names(dist)
    assert "depmirror/graph/schemas/graph.schema.json" in names
    assert "depmirror/cli/main.py" in names and "depmirror/runner/worker.py" in names
    assert not [n for n in names if "lab" in n.split("/")[0] or n.startswith("depmirror_lab")]
    assert not [n for n in names if n.startswith("tests/") or "/lab/" in n]


def test_the_sdist_carries_the_library_and_its_licence(dist: Path) -> None:
    (sdist,) = dist.glob("depmirror_mirroring-*.tar.gz")
    names = {n.split("/", 1)[1] for n in _tar_names(sdist) if "/" in n}
    assert {"pyproject.toml", "README.md", "LICENSE", "src/depmirror/graph/schemas/graph.schema.json"} <= names
    assert not [n for n in names if n.startswith(("tests/", "lab/", "plugins/"))]


def test_the_collection_tarball_carries_no_lab_and_no_tests(dist: Path) -> None:
    names = _tar_names(next(dist.glob("depmirror-mirroring-*.tar.gz")))
    assert "plugins/inventory/graph.py" in names and "roles/nginx_upstream/tasks/main.yml" in names
    assert "src/depmirror/planner/plan.py" in names  # the library, for execution environments
    leaked = [
        n for n in names if n == "lab" or n.startswith(("lab/", "tests/", "bench/", "dist/")) or "depmirror_lab" in n
    ]
    assert leaked == []
    assert not [n for n in names if n.endswith(".egg-info") or n.startswith(".import_linter_cache")]


def test_the_collection_carries_the_wheel_its_requirements_install(dist: Path) -> None:
    names = _tar_names(next(dist.glob("depmirror-mirroring-*.tar.gz")))
    (wheel,) = dist.glob(WHEEL)
    assert f"wheels/{wheel.name}" in names
    assert {"requirements.txt", "LICENSE"} <= set(names)
