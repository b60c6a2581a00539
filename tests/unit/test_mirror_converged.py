"""roles/mirror/files/converged.py, the check adjust.yml runs on each VM before the mirror role (issue 21).

It may only ever say "converged" when the role would change nothing: every difference, and every input it
cannot read, must leave the instance to the role. Run here as the VM runs it (python3, JSON on stdin).
There is no systemd on this machine, so no instance can pass the unit check here: the lab (bench/adjust_speed.py
and the adjust lab tests) shows the converged path; these tests show everything that must keep an instance out.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles" / "mirror" / "files" / "converged.py"


def check(instances: Any) -> subprocess.CompletedProcess[str]:
    text = instances if isinstance(instances, str) else json.dumps(instances)
    return subprocess.run(
        [sys.executable, str(SCRIPT)], input=text, capture_output=True, text=True, timeout=30, check=False
    )


def instance(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """An instance whose directory and unit file are exactly as expected, under tmp_path."""
    data = tmp_path / "data"
    data.mkdir(mode=0o750, exist_ok=True)
    data.chmod(0o750)
    unit = tmp_path / "depmirror-x.service"
    unit.write_text("[Unit]\nDescription=x\n")
    unit.chmod(0o644)
    spec = {
        "dependency": "x",
        "kind": "tcp",
        "role": "primary",
        "port": 1,
        "health_path": "/",
        "unit": "depmirror-x.service",
        "dirs": [{"path": str(data), "mode": "0750"}],
        "files": [{"path": str(unit), "mode": "0644", "sha1": hashlib.sha1(unit.read_bytes()).hexdigest()}],
    }
    return {**spec, **changes}


def without_systemd(reason: str) -> bool:
    """What the unit check says on a machine without a running systemd (or without systemctl at all)."""
    return reason == "depmirror-x.service is not enabled" or reason.startswith("could not check: ")


def differs(instances: Any) -> dict[str, str]:
    done = check(instances)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["converged"] == []
    return found["differs"]


def test_files_as_expected_still_need_systemd_to_say_the_unit_is_enabled(tmp_path: Path) -> None:
    found = differs([instance(tmp_path)])
    assert list(found) == ["x"] and without_systemd(found["x"])


def test_a_missing_directory_or_file_keeps_the_instance_for_the_role(tmp_path: Path) -> None:
    gone = instance(tmp_path, dirs=[{"path": str(tmp_path / "nowhere"), "mode": "0750"}])
    assert differs([gone]) == {"x": f"{tmp_path / 'nowhere'} is missing"}
    spec = instance(tmp_path)
    spec["files"][0]["path"] = str(tmp_path / "absent.service")
    assert differs([spec]) == {"x": f"{tmp_path / 'absent.service'} is missing"}


def test_a_wrong_mode_or_content_keeps_the_instance_for_the_role(tmp_path: Path) -> None:
    spec = instance(tmp_path)
    (tmp_path / "data").chmod(0o755)
    assert differs([spec]) == {"x": f"{tmp_path / 'data'} has mode 755, not 0750"}
    spec = instance(tmp_path)
    (tmp_path / "depmirror-x.service").write_text("[Unit]\nDescription=changed by hand\n")
    assert differs([spec]) == {"x": f"{tmp_path / 'depmirror-x.service'} differs from its template"}


def test_a_directory_where_a_file_belongs_and_the_reverse_keep_the_instance(tmp_path: Path) -> None:
    spec = instance(tmp_path)
    spec["files"][0]["path"] = str(tmp_path / "data")
    assert differs([spec]) == {"x": f"{tmp_path / 'data'} is not a file"}
    spec = instance(tmp_path, dirs=[{"path": str(tmp_path / "depmirror-x.service"), "mode": "0644"}])
    assert differs([spec]) == {"x": f"{tmp_path / 'depmirror-x.service'} is not a directory"}


def test_a_malformed_instance_is_reported_for_the_role_and_the_others_still_checked(tmp_path: Path) -> None:
    broken = {"dependency": "y", "dirs": [{"path": str(tmp_path)}]}  # no mode, no files
    found = differs([broken, instance(tmp_path)])
    assert found["y"].startswith("could not check: ")
    assert without_systemd(found["x"])


def test_input_that_is_not_the_expected_json_exits_non_zero_and_converges_nothing() -> None:
    # adjust.yml reads a non-zero exit as "nothing converged": every instance goes through the role.
    for hostile in ("", "not json", '{"dependency": "x"}', "[1, 2]", "\x00" * 10):
        done = check(hostile)
        assert done.returncode != 0 or json.loads(done.stdout)["converged"] == [], hostile


def test_the_check_changes_nothing_it_reads(tmp_path: Path) -> None:
    spec = instance(tmp_path)
    (tmp_path / "data").chmod(0o700)
    before = {p: (p.stat().st_mode, p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    differs([spec])
    assert {p: (p.stat().st_mode, p.stat().st_mtime_ns) for p in tmp_path.iterdir()} == before
