"""A phase against a host that does not answer: one error naming the phase and the host, nothing run."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from depmirror.frontends.pyinfra.engine import Phase, PhaseFailed, PhaseOptions, run_phase, run_phases
from depmirror.frontends.pyinfra.inventory import Connection
from depmirror.rollback.remote import SshOptions


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_host_fails_the_phase_before_any_operation_is_added() -> None:
    document = {"hosts": {"vm-x": {"ansible_host": "127.0.0.1"}}, "groups": {}, "all_vars": {}}
    added: list[Any] = []

    def add_ops(state: Any) -> list[Any]:
        added.append(state)
        return []

    connection = Connection(SshOptions(port=closed_port(), key_file="/nonexistent", known_hosts="/dev/null"))
    with pytest.raises(PhaseFailed) as raised:
        run_phase("primaries", document, connection, ["vm-x"], add_ops, PhaseOptions(connect_timeout=2))
    assert str(raised.value) == "primaries: cannot connect over SSH to vm-x"
    assert raised.value.phase == "primaries" and added == []


def test_a_phase_with_no_host_connects_to_nothing() -> None:
    def add_ops(state: Any) -> list[Any]:
        raise AssertionError("no operation may be added without a host")

    result = run_phase(
        "decommission", {"hosts": {}, "groups": {}}, Connection(SshOptions()), [], add_ops, PhaseOptions()
    )
    assert result.ops == [] and result.changed == []


def test_the_check_connects_to_every_phase_s_hosts_at_once_and_names_the_one_that_does_not_answer() -> None:
    """run_phases reads every host first: a host that does not answer fails before any operation is added."""
    document = {
        "hosts": {"vm-x": {"ansible_host": "127.0.0.1"}, "lb-x": {"ansible_host": "127.0.0.1"}},
        "groups": {},
        "all_vars": {},
    }
    added: list[Any] = []

    def add_ops(state: Any, hosts: Any, known: Any) -> list[Any]:
        added.append(hosts)
        return []

    phases = [
        Phase("primaries", {"vm-x": {"paths": ("/a",)}}, add_ops),
        Phase("load balancers", {"lb-x": {"paths": ("/b",)}}, add_ops),
    ]
    connection = Connection(SshOptions(port=closed_port(), key_file="/nonexistent", known_hosts="/dev/null"))
    with pytest.raises(PhaseFailed) as raised:
        run_phases(phases, document, connection, PhaseOptions(connect_timeout=2))
    assert str(raised.value) == "check: cannot connect over SSH to lb-x, vm-x"
    assert added == []


def test_phases_without_hosts_connect_to_nothing_and_report_no_operation() -> None:
    def add_ops(state: Any, hosts: Any, known: Any) -> list[Any]:
        raise AssertionError("no operation may be added without a host")

    results = run_phases(
        [Phase("primaries", {}, add_ops), Phase("decommission", {}, add_ops)],
        {"hosts": {}, "groups": {}},
        Connection(SshOptions()),
        PhaseOptions(),
    )
    assert [(r.phase, r.ops) for r in results] == [("primaries", []), ("decommission", [])]
