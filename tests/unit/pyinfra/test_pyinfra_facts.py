"""Parsing the one-round-trip host state: what the adjust operations decide from."""

from __future__ import annotations

from depmirror.frontends.pyinfra.facts import HostState, ReleaseDirs, _script, parse_host_state

PATHS = ("/var/lib/depmirror/a", "/etc/systemd/system/depmirror-a.service", "/etc/depmirror/a.redis.conf")
UNITS = ("depmirror-a.service",)


def test_files_directories_absent_paths_and_units_are_read_by_index() -> None:
    output = [
        "F 0 750 -",
        "F 1 644 " + "a" * 40,
        "F 2 -",
        "U 0 active enabled",
    ]
    state = parse_host_state(PATHS, UNITS, output)
    assert state.files[PATHS[0]] is not None and state.files[PATHS[0]].sha1 is None
    assert state.files[PATHS[1]] is not None and state.files[PATHS[1]].mode == "644"
    assert state.files[PATHS[1]].sha1 == "a" * 40
    assert state.files[PATHS[2]] is None
    unit = state.units[UNITS[0]]
    assert unit.running and unit.is_enabled


def test_a_unit_that_is_failed_or_unknown_is_neither_running_nor_enabled() -> None:
    state = parse_host_state(PATHS, UNITS, ["U 0 failed disabled"])
    assert not state.units[UNITS[0]].running and not state.units[UNITS[0]].is_enabled
    # No answer at all (systemctl missing): unknown, so the operation starts and enables it.
    state = parse_host_state(PATHS, UNITS, [])
    assert not state.units[UNITS[0]].running and state.files == dict.fromkeys(PATHS)


def test_lines_that_are_not_the_fact_s_own_are_ignored_never_an_index_error() -> None:
    hostile = ["", "F", "F x 644 y", "F 99 644 " + "b" * 40, "U 7 active enabled", "Z 0 1 2", "F 0 644 abc extra"]
    state = parse_host_state(PATHS, UNITS, hostile)
    assert set(state.files) == set(PATHS) and set(state.units) == set(UNITS)
    assert state.files[PATHS[0]] is not None and state.files[PATHS[0]].sha1 == "abc"


def test_paths_are_quoted_in_the_command() -> None:
    script = _script(("/tmp/a b; rm -rf /",), ("x$(id).service",))
    assert "'/tmp/a b; rm -rf /'" in script and "'x$(id).service'" in script


def test_release_dirs_come_newest_first_and_junk_lines_are_skipped() -> None:
    fact = ReleaseDirs()
    found = fact.process(["100.5 /r/old", "300.0 /r/new", "not-a-time /r/x", "200 /r/mid"])
    assert [path for _, path in found] == ["/r/new", "/r/mid", "/r/old"]
    assert HostState().files == {}
