"""Several writer processes at once, and kill -9 of a writer mid-run: nothing acknowledged is lost.
On every backend (store_url: a SQLite file, a PostgreSQL database; tests/unit/store/conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from depmirror.store import EventFilter, open_store

# A writer appends events forever and prints each id once append_event has returned (= acknowledged).
WRITER = r"""
import sys
from depmirror.store import Event, open_store
store = open_store(sys.argv[1])
name = sys.argv[2]
for seq in range(int(sys.argv[3])):
    event = store.append_event(Event(
        kind="rollback", dependency=name, instance=f"{name}-{seq}", outcome="succeeded",
        trigger={"type": "user", "user": name}, inputs={"seq": seq, "pad": "x" * 2000},
        details={"seq": seq, "check": f"{name}:{seq}"}))
    print(event.id, seq, flush=True)
"""


def _start(db: str, name: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, db, name, str(count)], stdout=subprocess.PIPE, text=True)


def _check_events(db: str, acked: dict[str, dict[int, int]]) -> None:
    with open_store(db, create=False) as store:
        if db.startswith("sqlite:"):
            assert store.integrity_check() == "ok"  # type: ignore[attr-defined]
        events = {e.id: e for e in store.events(EventFilter(limit=None))}
    for name, ids in acked.items():
        for event_id, seq in ids.items():
            event = events[event_id]  # every acknowledged event is there...
            assert event.dependency == name
            # ...and whole: every JSON column parses and carries what was written.
            assert event.details == {"seq": seq, "check": f"{name}:{seq}"}
            assert event.inputs == {"seq": seq, "pad": "x" * 2000}
    for event in events.values():
        seq = event.details["seq"]
        assert event.instance == f"{event.dependency}-{seq}"


def test_kill_9_of_a_writer_loses_no_acknowledged_event(store_url: str) -> None:
    db = store_url
    open_store(db).close()
    steady = _start(db, "steady", 150)
    victim = _start(db, "victim", 100_000)
    acked: dict[str, dict[int, int]] = {"steady": {}, "victim": {}}
    deadline = time.monotonic() + 30
    assert victim.stdout is not None and steady.stdout is not None
    try:
        while len(acked["victim"]) < 300 and time.monotonic() < deadline:
            event_id, seq = victim.stdout.readline().split()
            acked["victim"][int(event_id)] = int(seq)
        os.kill(victim.pid, signal.SIGKILL)  # mid-write: it is appending as fast as it can
        victim.wait(timeout=10)
        # Lines already printed were acknowledged before the kill: read them too.
        for line in victim.stdout.read().splitlines():
            event_id, seq = line.split()
            acked["victim"][int(event_id)] = int(seq)
        for line in steady.stdout.read().splitlines():
            event_id, seq = line.split()
            acked["steady"][int(event_id)] = int(seq)
        assert steady.wait(timeout=30) == 0
    finally:
        for process in (victim, steady):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert victim.returncode == -signal.SIGKILL
    assert len(acked["victim"]) >= 300
    assert len(acked["steady"]) == 150  # the other writer was never blocked out for good
    _check_events(db, acked)
    # The store still takes writes after the crash.
    with open_store(db) as store:
        assert store.append_event(store.events(EventFilter(limit=1))[0]).id is not None
