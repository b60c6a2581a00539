"""The generic `stateful:` mover: argv lists run as written, through a real shell as sshd would run them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from depmirror.rollback.command_state import (
    CommandStateError,
    StatefulCommands,
    applies,
    command_line,
    fence,
    fence_for,
    migrate_for,
    offsets_for,
    parse_lag,
    promote,
    read_offsets,
)
from depmirror.rollback.flow import lag_exclusions
from depmirror.rollback.remote import RemoteError

HOSTILE = ["; rm -rf /", "$(id)", "`id`", "{{ 7*7 }}", "{% raw %}", "a b\tc", "'\"", "*", "~root", "$HOME", "\\n", ""]


class LocalShell:
    """sshd's side of `exec_command`: the one command line, run by `sh -c` (the user's shell)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.down: set[str] = set()

    def run(self, address: str, command: str, stdin: str = "", timeout_s: float = 10.0) -> tuple[int, str, str]:
        self.calls.append((address, command))
        if address in self.down:
            raise RemoteError(f"cannot open SSH to root@{address}: timed out")
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=timeout_s, check=False)
        return done.returncode, done.stdout, done.stderr


def _echo_argv(out: Path) -> list[str]:
    """A program that writes the argv it received as JSON: what the engine's command would see."""
    return [sys.executable, "-c", f"import json,sys; open({str(out)!r},'w').write(json.dumps(sys.argv[1:]))"]


@pytest.mark.parametrize("argument", HOSTILE)
def test_each_hostile_argument_arrives_as_one_literal_word(tmp_path: Path, argument: str) -> None:
    out = tmp_path / "argv.json"
    canary = tmp_path / "ran"
    argv = [*_echo_argv(out), argument, f"$(touch {canary})", "--flag"]
    shell = LocalShell()
    promote(shell, StatefulCommands(tuple(argv), ("true",), ("echo", "0")), "10.0.0.1", 5)
    assert json.loads(out.read_text()) == [argument, f"$(touch {canary})", "--flag"]
    assert not canary.exists(), "a shell ran part of an argument"


def test_the_whole_hostile_set_in_one_argv_keeps_its_count_and_order(tmp_path: Path) -> None:
    out = tmp_path / "argv.json"
    shell = LocalShell()
    assert fence(shell, StatefulCommands(("true",), (*_echo_argv(out), *HOSTILE), ("true",)), "10.0.0.1", 5)
    assert json.loads(out.read_text()) == HOSTILE


def test_lag_becomes_an_offset_the_lag_gate_reads() -> None:
    shell = LocalShell()
    lags = {"vm-a": "0", "vm-b": "500", "vm-c": "not a number"}
    survivors = {host: host for host in lags}
    per_host = {host: StatefulCommands(("true",), ("true",), ("echo", lag)) for host, lag in lags.items()}
    offsets = {}
    for host, commands in per_host.items():
        offsets.update(read_offsets(shell, commands, {host: survivors[host]}, 5))
    assert offsets == {"vm-a": 0, "vm-b": -500}  # vm-c printed no integer: no candidate
    assert set(lag_exclusions(offsets, 100)) == {"vm-b"}
    assert lag_exclusions(offsets, 500) == {}


@pytest.mark.parametrize(
    "printed", ["-5", "1e9", "12 bytes", "99999999999999999999999", "$(id)", "", "nan", "0x10", "\uff11\uff12"]
)
def test_a_lag_that_is_not_a_plain_integer_is_no_candidate(printed: str) -> None:
    assert parse_lag(printed) is None


def test_an_unreachable_or_failing_survivor_is_left_out_and_a_failed_fence_says_so() -> None:
    shell = LocalShell()
    shell.down.add("10.0.0.9")
    commands = StatefulCommands(("true",), ("false",), ("echo", "3"))
    assert read_offsets(shell, commands, {"up": "10.0.0.1", "gone": "10.0.0.9"}, 5) == {"up": -3}
    assert fence(shell, commands, "10.0.0.1", 5) is False
    assert fence(shell, commands, "10.0.0.9", 5) is False


def test_a_failing_promote_raises_with_its_words() -> None:
    shell = LocalShell()
    commands = StatefulCommands(("sh", "-c", "echo not a replica >&2; exit 3"), ("true",), ("true",))
    with pytest.raises(CommandStateError, match="exited 3: not a replica"):
        promote(shell, commands, "10.0.0.1", 5)
    shell.down.add("10.0.0.1")
    with pytest.raises(CommandStateError, match="cannot run promote"):
        promote(shell, StatefulCommands(("true",), ("true",), ("true",)), "10.0.0.1", 5)


@pytest.mark.parametrize(
    "carried",
    [
        None,
        {"promote": "rm -rf /", "fence": ["x"], "lag": ["y"]},  # a string would be split by someone: refused
        {"promote": [], "fence": ["x"], "lag": ["y"]},
        {"promote": ["x", 1], "fence": ["x"], "lag": ["y"]},
        {"fence": ["x"], "lag": ["y"]},
    ],
)
def test_commands_from_a_plan_must_be_lists_of_strings(carried: object) -> None:
    item = {"name": "ledger", **({} if carried is None else {"stateful_commands": carried})}
    with pytest.raises(CommandStateError, match="ledger"):
        StatefulCommands.of(item)


def test_commands_from_a_plan_keep_every_argument() -> None:
    item = {"name": "ledger", "stateful_commands": {"promote": ["p", "$(id)"], "fence": ["f"], "lag": ["l", "{{x}}"]}}
    assert StatefulCommands.of(item) == StatefulCommands(("p", "$(id)"), ("f",), ("l", "{{x}}"))


def test_an_empty_argv_is_refused_not_run() -> None:
    with pytest.raises(CommandStateError):
        command_line([])


def test_the_fast_path_entry_points_run_fence_on_the_old_primary_then_promote_on_the_target(tmp_path: Path) -> None:
    log = tmp_path / "log"
    record = [sys.executable, "-c", f"import sys; open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')"]
    item = {
        "name": "ledger",
        "kind": "tcp",
        "stateful_commands": {"promote": [*record, "promote"], "fence": [*record, "fence"], "lag": ["echo", "0"]},
        "instances": [
            {"host": "a", "address": "10.0.0.1"},
            {"host": "b", "address": "10.0.0.2"},
        ],
    }
    decided = {
        "after": item,
        "survivors": ["b"],
        "failed": {"host": "a", "address": "10.0.0.1"},
        "target": {"host": "b", "address": "10.0.0.2"},
    }
    shell = LocalShell()
    assert applies(decided) and not applies({"after": {"name": "cache"}})
    assert offsets_for(shell, decided, 5) == {"b": 0}
    assert fence_for(shell, decided, timeout_s=5) is True
    assert migrate_for(shell, decided, timeout_s=5) == []
    assert log.read_text().splitlines() == ["fence", "promote"]
    assert [address for address, _ in shell.calls[-2:]] == ["10.0.0.1", "10.0.0.2"]
