"""The failover chain's report (lab/src/depmirror_lab/chain.py) from real stores and real log lines, without
the lab: what a failed or slow fault of bench/failover.py says about each step."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from depmirror_lab import chain, failover, machine

from depmirror.cli.lab import _print_chain
from depmirror.store import Event, QueuedAlert, open_store

# Lines as Alertmanager 0.25 (logfmt, debug) and `depmirror serve` (Python logging) write them.
AM_LINES = [
    'ts=2026-11-29T11:00:01.100Z caller=dispatch.go:163 level=debug component=dispatcher msg="Received alert" '
    "alert=DepmirrorPrimaryDown[0123456][active]",
    'ts=2026-11-29T11:00:01.150Z caller=dispatch.go:516 level=debug component=dispatcher aggrGroup="{}:'
    '{dependency=\\"catalog-api\\", instance=\\"catalog-api@vm-b2\\"}" msg=flushing '
    "alerts=[DepmirrorPrimaryDown[0123456][active]]",
    "ts=2026-11-29T11:00:01.190Z caller=notify.go:743 level=debug component=dispatcher receiver=depmirror "
    'integration=webhook[0] msg="Notify success" attempts=1',
]


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_alertmanager_steps_are_read_from_its_debug_log() -> None:
    times = chain.alertmanager_times(AM_LINES, "catalog-api@vm-b2", ["0123456789abcdef"])
    assert times == {
        "received_at": _epoch("2026-11-29T11:00:01.100+00:00"),
        "flushed_at": _epoch("2026-11-29T11:00:01.150+00:00"),
        "notified_at": _epoch("2026-11-29T11:00:01.190+00:00"),
    }
    # Another instance's group and another alert's fingerprint are not this fault's steps.
    assert chain.alertmanager_times(AM_LINES, "catalog-api@vm-a1", ["fedcba9876543210"]) == {
        "received_at": None,
        "flushed_at": None,
        "notified_at": None,
    }


def _flush(at: str) -> str:
    return (
        f"ts=2026-11-29T11:00:{at}Z caller=dispatch.go:516 level=debug component=dispatcher aggrGroup="
        '"{}:{dependency=\\"catalog-api\\", instance=\\"catalog-api@vm-b2\\"}" msg=flushing '
        '"alerts=[DepmirrorPrimaryDown[0123456][active]]"'
    )


def test_in_a_burst_the_flush_is_the_last_one_before_the_webhook_arrived() -> None:
    # A zone outage: the group is flushed again every group_interval while alerts keep firing.
    lines = [AM_LINES[0], _flush("01.150"), AM_LINES[2], _flush("01.400"), _flush("01.650")]
    delivered = _epoch("2026-11-29T11:00:01.160+00:00")

    times = chain.alertmanager_times(lines, "catalog-api@vm-b2", ["0123456789abcdef"], delivered)

    assert times["flushed_at"] == _epoch("2026-11-29T11:00:01.150+00:00")
    assert times["notified_at"] == _epoch("2026-11-29T11:00:01.190+00:00")


def test_a_long_window_keeps_its_first_lines_where_the_fault_starts(tmp_path: Path) -> None:
    log = tmp_path / "alertmanager.log"
    log.write_text("".join(_flush(f"{i // 10:02d}.{i % 10}00") + "\n" for i in range(100)))
    start = _epoch("2026-11-29T11:00:00+00:00")

    capped = chain.log_lines(log, start, start + 60, ["catalog-api@vm-b2"])
    every = chain.log_lines(log, start, start + 60, ["catalog-api@vm-b2"], limit=None)

    assert len(capped) == chain.MAX_LINES and capped[0] == every[0] and "11:00:00.000Z" in capped[0]
    assert len(every) == 100


def test_log_lines_keep_the_window_and_what_names_the_dependency(tmp_path: Path) -> None:
    log = tmp_path / "runner.log"
    log.write_text(
        "2026-11-29 10:59:59,000 INFO depmirror.runner: catalog-api before the window\n"
        "2026-11-29 11:00:01,000 INFO depmirror.runner: catalog-api decided\n"
        "2026-11-29 11:00:01,500 INFO depmirror.runner: payments-api decided\n"
        "2026-11-29 11:00:02,000 WARNING depmirror.runner: fast path: lb1 unreachable\n"
        "a traceback line without a time\n"
        "2026-11-29 11:00:09,000 INFO depmirror.runner: catalog-api after the window\n"
    )
    start = datetime(2026, 11, 29, 11, 0, 0).timestamp()  # the runner logs local time, as this reads it
    lines = chain.log_lines(log, start, start + 5, ["catalog-api"], ("WARNING",))
    assert [line.split(": ", 1)[1] for line in lines] == ["catalog-api decided", "fast path: lb1 unreachable"]
    assert chain.log_lines(tmp_path / "missing.log", start, start + 5, ["x"]) == []


def test_steps_say_where_the_chain_broke() -> None:
    times = {
        "fault": 100.0,
        "probe_failed": 101.2,
        "alert_firing": 101.5,
        "alertmanager_flushed": 101.6,
        "webhook_received": None,
        "action_started": None,
        "switched": None,
    }
    assert chain._steps(times) == {
        "probe_failed": 1.2,
        "alert_firing": 0.3,
        "alertmanager_flushed": 0.1,
        "webhook_received": None,
        "action_started": None,
        "switched": None,
    }


def test_the_queue_and_the_decisions_of_a_fault_come_from_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    fault_at = datetime.now(UTC).timestamp()
    with open_store(url) as store:
        store.enqueue(
            [
                QueuedAlert(
                    fingerprint="0123456789abcdef",
                    starts_at="2026-11-29T11:00:01Z",
                    status="firing",
                    dependency="catalog-api",
                    instance="catalog-api@vm-b2",
                    labels={"alertname": "DepmirrorPrimaryDown", "dependency": "catalog-api"},
                )
            ]
        )
        store.append_event(
            Event(
                kind="refused",
                dependency="catalog-api",
                outcome="refused",
                instance="catalog-api@vm-b2",
                decision="refuse",
                reason="no healthy target (catalog-api@vm-a1=unknown)",
                inputs={"failed_instance": "unhealthy", "candidates": {"catalog-api@vm-a1": "unknown"}},
            )
        )
    queued = chain.queued_alerts(url, "catalog-api", "vm-b2", fault_at - 5)
    assert [(q["status"], q["alertname"], q["state"]) for q in queued] == [
        ("firing", "DepmirrorPrimaryDown", "pending")
    ]
    decided = chain.decisions(url, "catalog-api", fault_at - 5)
    assert [(d["kind"], d["reason"], d["health"]["candidates"]) for d in decided] == [
        ("refused", "no healthy target (catalog-api@vm-a1=unknown)", {"catalog-api@vm-a1": "unknown"})
    ]
    assert chain.queued_alerts(url, "catalog-api", "vm-a1", fault_at - 5) == []
    assert chain.queued_alerts("postgresql://nowhere/db", "catalog-api", "vm-b2", 0) == []


def test_an_unreachable_prometheus_gives_no_steps_rather_than_an_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    url = f"http://127.0.0.1:{port}"
    assert chain.probe_samples(url, "catalog-api", "vm-b2", 100.0, 110.0)["seen_at"] is None
    assert chain.alert_states(url, "catalog-api", "vm-b2", 100.0, 110.0)["firing_at"] is None


def test_the_machine_load_and_cpu_share_are_plain_numbers() -> None:
    load = machine.load()
    assert set(load) == {"load1", "load5", "load15", "runnable"}
    assert all(value >= 0 for value in load.values())
    meter = machine.CpuMeter().start()
    sum(range(200_000))
    busy = meter.busy()
    assert busy is None or 0.0 <= busy <= 1.0


def test_lab_failover_prints_the_chain_and_a_slow_faults_decisions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = failover.FaultResult(
        "cut", "catalog-api", "vm-b2", 100.0, "rollback", "succeeded", "vm-a1", 103.2, 102.8, 300, []
    )
    result.chain = {
        "at": {"fault": 0.0, "probe_failed": 2.0, "alert_firing": 2.8, "switched": 3.2},
        "broke_at": None,
        "decisions": [{"at": 2.8, "kind": "rollback", "outcome": "succeeded", "reason": "vm-a1 takes over"}],
        "logs": {"runner": ["2026-11-29 11:00:02,000 WARNING depmirror.runner: slow"]},
    }
    assert result.slow and not result.failed_fault
    _print_chain(result)
    out = capsys.readouterr().out
    assert "probe_failed 2.0, alert_firing 2.8, switched 3.2" in out
    assert "decision +2.8s: rollback succeeded: vm-a1 takes over" in out
    assert "runner: 2026-11-29 11:00:02,000 WARNING depmirror.runner: slow" in out
