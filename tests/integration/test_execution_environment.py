"""ansible-builder's introspection of this collection, as it runs when a user builds an Execution Environment
that includes it (issue 18): it must not fail, and it must ask for the library at the collection's version
and for nginx. Offline: introspection reads files, it fetches nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILDER = Path(sys.executable).parent / "ansible-builder"


def test_introspection_asks_for_the_library_at_the_collection_version_and_nginx(tmp_path: Path) -> None:
    if not BUILDER.exists():
        pytest.skip("ansible-builder is not installed (the test extra installs it)")
    installed = tmp_path / "collections" / "ansible_collections" / "depmirror" / "mirroring"
    installed.mkdir(parents=True)
    for name in ("galaxy.yml", "requirements.txt"):
        shutil.copy(ROOT / name, installed / name)
    shutil.copytree(ROOT / "meta", installed / "meta")
    found = subprocess.run(
        [str(BUILDER), "introspect", "--sanitize", str(tmp_path / "collections")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr[-2000:]
    report = yaml.safe_load(found.stdout)
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    python = [line.split("#")[0].strip() for line in report["python"]]
    assert f"depmirror-mirroring=={version}" in python, json.dumps(report)
    assert not [line for line in python if line.startswith("depmirror==") or line == "depmirror"]
    assert any(line.startswith("nginx-light") for line in report["system"]), json.dumps(report)
