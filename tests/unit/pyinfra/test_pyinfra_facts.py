"""Parsing the one-round-trip host state: what the adjust operations decide from."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from depmirror.frontends.pyinfra.facts import FileState, HostState, UnitState, _script, merge_watches, parse_host_state

PATHS = ("/var/lib/depmirror/a", "/etc/systemd/system/depmirror-a.service", "/etc/depmirror/a.redis.conf")
UNITS = ("depmirror-a.service",)


def run_script(paths: tuple[str, ...], units: tuple[str, ...] = (), dirs: tuple[str, ...] = ()) -> list[str]:
    """The fact's command, run by a real shell here (systemctl may be missing: its units are then unknown)."""
    done = subprocess.run(["sh", "-c", _script(paths, units, dirs)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_files_directories_and_absent_paths_are_read_with_their_mode_and_sha1(tmp_path: Path) -> None:
    directory, unit, absent = tmp_path / "data dir", tmp_path / "a.service", tmp_path / "gone.conf"
    directory.mkdir(mode=0o750)
    directory.chmod(0o750)
    unit.write_text("[Unit]\n")
    unit.chmod(0o644)
    paths = (str(directory), str(unit), str(absent))
    state = parse_host_state(paths, (), run_script(paths))
    assert state.files[paths[0]] == FileState("750", None)
    assert state.files[paths[1]] == FileState("644", hashlib.sha1(b"[Unit]\n").hexdigest())
    assert state.files[paths[2]] is None


def test_units_are_read_from_systemctl_show_by_their_id() -> None:
    """As systemctl printed it on the lab: `nginx` is shown as nginx.service."""
    shown = [
        "Id=depmirror-a.service",
        "ActiveState=active",
        "UnitFileState=enabled",
        "",
        "Id=nginx.service",
        "ActiveState=failed",
        "UnitFileState=disabled",
    ]
    state = parse_host_state((), ("depmirror-a.service", "nginx", "depmirror-b.service"), shown)
    assert state.units["depmirror-a.service"].running and state.units["depmirror-a.service"].is_enabled
    assert not state.units["nginx"].running and not state.units["nginx"].is_enabled
    # Not shown at all (systemctl missing, or the unit unknown to it): unknown, so it is started and enabled.
    assert state.units["depmirror-b.service"] == UnitState("unknown", "unknown")
    assert parse_host_state((), UNITS, ["Id=depmirror-a.service", "ActiveState=", "UnitFileState="]).units[
        UNITS[0]
    ] == UnitState("unknown", "unknown")


def test_lines_that_are_not_the_fact_s_own_are_ignored_never_an_error() -> None:
    hostile = [
        "",
        "S",
        "S 644",
        "S abc /etc/systemd/system/depmirror-a.service",
        "S 644 /etc/passwd",  # not asked for
        "b" * 40 + "  /etc/passwd",
        "B" * 40 + "  " + PATHS[1],  # not sha1sum's (lowercase)
        "ActiveState=active",  # before any Id
        "Id=other.service",
        "ActiveState=active",
        "D 9 1.0 /x",
        "D x 1.0 /x",
        "Z 0 1 2",
    ]
    state = parse_host_state(PATHS, UNITS, hostile, ("/d",))
    assert state.files == dict.fromkeys(PATHS)
    assert state.units == {UNITS[0]: UnitState("unknown", "unknown")} and state.listings == {"/d": []}


def test_a_file_whose_sha1_cannot_be_read_back_counts_as_differing() -> None:
    """sha1sum escapes odd names with a backslash: no SHA-1, so the file is written again (never missed)."""
    state = parse_host_state(PATHS, (), [f"S 644 {PATHS[1]}", "\\" + "c" * 40 + "  " + PATHS[1]])
    assert state.files[PATHS[1]] == FileState("644", None)


def test_paths_are_quoted_in_the_command() -> None:
    script = _script(("/tmp/a b; rm -rf /",), ("x$(id).service",))
    assert "'/tmp/a b; rm -rf /'" in script and "'x$(id).service'" in script


def test_release_directories_are_listed_newest_first_in_the_same_round_trip() -> None:
    dirs = ("/etc/nginx/depmirror/releases", "/nonexistent")
    output = [
        "D 0 100.5 /etc/nginx/depmirror/releases/old",
        "D 0 300.0 /etc/nginx/depmirror/releases/new one",  # the rest of the line is the path, spaces kept
        "D 0 not-a-time /etc/nginx/depmirror/releases/x",
        "D 5 1.0 /elsewhere",
        "D 1",
    ]
    state = parse_host_state((), (), output, dirs)
    assert [p for _, p in state.listings[dirs[0]]] == [
        "/etc/nginx/depmirror/releases/new one",
        "/etc/nginx/depmirror/releases/old",
    ]
    assert state.listings[dirs[1]] == []
    assert HostState().listings == {} and HostState().files == {}


def test_the_command_lists_quoted_directories_and_never_fails_on_a_missing_one() -> None:
    script = _script((), (), ("/etc/x y; id",))
    assert "find '/etc/x y; id' -mindepth 1 -maxdepth 1 -type d" in script
    assert script.endswith("; true")
    assert _script((), ()) == "true"


def test_merged_watches_read_each_path_unit_and_directory_once_in_order() -> None:
    merged = merge_watches(
        {"paths": ("/a", "/b"), "units": ("u1",)},
        {"paths": ("/b", "/c"), "units": ("u1", "u2"), "dirs": ("/d",)},
    )
    assert merged == {"paths": ("/a", "/b", "/c"), "units": ("u1", "u2"), "dirs": ("/d",)}


def test_the_real_command_lists_subdirectories_and_answers_for_a_missing_directory(tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    (releases / "r1").mkdir(parents=True)
    (releases / "not-a-dir").write_text("x")
    dirs = (str(releases), str(tmp_path / "nope"))
    state = parse_host_state((), (), run_script((), (), dirs), dirs)
    assert [path for _, path in state.listings[dirs[0]]] == [str(releases / "r1")]
    assert state.listings[dirs[1]] == []
