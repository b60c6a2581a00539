"""`failback.yml -e depmirror_zone=Z` reads what the zone's latest shift moved from the history (module
depmirror.mirroring.zonal_shift_moves, through the library), with a real SQLite store and ansible-playbook.
A zone never shifted, or still shifted, is refused with the fix; a hostile zone name is data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.integration.ansible_run import playbook

from depmirror.errors import ConfigError
from depmirror.fleet.zonal_shift import shift_fingerprint
from depmirror.fleet.zonal_shift_service import latest_shift_moves
from depmirror.store import Event, ZonalShift, open_store

NOW = datetime.now(UTC).replace(microsecond=0)


def _shift(url: str, zone: str, started: datetime, moved: list[dict[str, str]], *, end: bool = True) -> None:
    with open_store(url) as store:

        def event(stored: ZonalShift) -> Event:
            details = {"zone": zone, "shift_id": stored.id, "moved": moved}
            return Event(kind="zonal_shift", dependency="-", outcome="succeeded", time=started, details=details)

        store.start_zonal_shift(ZonalShift(zone, "drill", "ops", started, started + timedelta(hours=1)), event=event)
        if end:
            store.end_zonal_shift(zone, ended_ts=started + timedelta(minutes=5), end_reason="repaired")


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


def test_the_latest_ended_shift_lists_what_it_moved(store_url: str) -> None:
    older = NOW - timedelta(hours=3)
    _shift(store_url, "zone-a", older, [{"dependency": "old", "instance": "old@vm-a9"}])
    started = NOW - timedelta(hours=1)
    _shift(store_url, "zone-a", started, [{"dependency": "payments", "instance": "payments@vm-a1"}])
    # A switchover its queue item triggered later (the runner requeued it): found in the history too.
    with open_store(store_url) as store:
        fingerprint = shift_fingerprint("zone-a", "reports", started)
        store.append_event(
            Event(
                kind="rollback",
                dependency="reports",
                outcome="succeeded",
                time=started + timedelta(seconds=30),
                instance="reports@vm-a2",
                trigger={"fingerprints": [fingerprint]},
            )
        )

    shift = latest_shift_moves(store_url, "zone-a")

    assert shift["instances"] == [
        {"dependency": "payments", "instance": "payments@vm-a1"},
        {"dependency": "reports", "instance": "reports@vm-a2"},
    ]
    assert shift["started_ts"] == started.isoformat()


def test_a_zone_never_shifted_or_still_shifted_is_refused_with_the_fix(store_url: str) -> None:
    with pytest.raises(ConfigError, match=r"was never shifted.*depmirror_dependencies"):
        latest_shift_moves(store_url, "zone-b")
    _shift(store_url, "zone-b", NOW - timedelta(minutes=1), [], end=False)
    with pytest.raises(ConfigError, match=r"has not ended.*depmirror zone end zone-b"):
        latest_shift_moves(store_url, "zone-b")


def test_the_module_reads_it_through_ansible(store_url: str, tmp_path: Path) -> None:
    _shift(store_url, "zone-a", NOW - timedelta(hours=1), [{"dependency": "payments", "instance": "payments@vm-a1"}])
    book = tmp_path / "read.yml"
    book.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: Read the shift\n"
        "      depmirror.mirroring.zonal_shift_moves:\n"
        "        zone: '{{ zone }}'\n"
        f"        state_store: '{store_url}'\n"
    )
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("localhost ansible_connection=local\n")

    run = playbook(book, [inventory], "-e", "zone=zone-a")
    assert run.rc == 0, run.stderr + run.messages()
    result = run.task("Read the shift")["hosts"]["localhost"]
    assert result["shift"]["instances"] == [{"dependency": "payments", "instance": "payments@vm-a1"}]

    # The operator's command line is trusted by Ansible (it templates it); what reaches the store is data.
    hostile = "zone-a'; DROP TABLE zonal_shifts; --\n" + "z" * 10_000
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"zone": hostile}))
    run = playbook(book, [inventory], "-e", f"@{extra}")
    assert run.rc != 0
    assert "was never shifted" in run.messages() and "Traceback" not in run.messages()
    assert latest_shift_moves(store_url, "zone-a")["instances"], "the store still holds its shifts"
