"""`depmirror.mirroring.policy` in a real ansible-playbook run on localhost: check mode writes nothing and
reports the change, diff shows before/after, a second run is unchanged, absent ends it; bad input fails the
task naming the field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from depmirror.fleet.applied import record_applied_plan
from depmirror.graph.load import load_graph
from depmirror.planner.plan import compute_plan
from depmirror.store import EventFilter, open_store

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventories" / "example" / "graph.yml"


def _play(tmp_path: Path, store: str, tasks: list[dict[str, Any]], *flags: str) -> dict[str, Any]:
    playbook = tmp_path / "policy.yml"
    playbook.write_text(
        yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], sort_keys=False)
    )
    env = {k: v for k, v in os.environ.items() if k != "DEPMIRROR_STORE"}
    ran = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            *flags,
            str(playbook),
        ],
        capture_output=True,
        text=True,
        env={
            **env,
            "DEPMIRROR_STORE": store,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
        },
        cwd=ROOT,
        timeout=120,
    )
    document = json.loads(ran.stdout[ran.stdout.index("{") :])
    return {"rc": ran.returncode, "tasks": [t["hosts"]["localhost"] for t in document["plays"][0]["tasks"]]}


def _task(**options: Any) -> dict[str, Any]:
    return {"name": "Set the ledger's policy", "depmirror.mirroring.policy": options}


FROZEN = {"dependency": "ledger", "rollback": "frozen", "expires_in": "2h", "reason": "schema migration"}


def test_check_mode_diff_idempotence_and_absent(tmp_path: Path) -> None:
    store = str(tmp_path / "state.db")
    record_applied_plan(store, compute_plan(load_graph(EXAMPLE), now=1000.0).to_dict())
    checked = _play(tmp_path, store, [_task(**FROZEN)], "--check", "--diff")["tasks"][0]
    assert checked["changed"] is True and checked["override"]["rollback"] == "frozen"
    assert checked["diff"]["before"] == {} and checked["diff"]["after"]["rollback"] == "frozen"
    with open_store(store) as opened:
        assert opened.overrides(None) == [], "check mode writes nothing"
    first, second = _play(tmp_path, store, [_task(**FROZEN), _task(**FROZEN)])["tasks"]
    assert first["changed"] is True and second["changed"] is False
    assert second["override"]["id"] == first["override"]["id"]
    absent = _task(dependency="ledger", state="absent", reason="migration done")
    cleared = _play(tmp_path, store, [absent, absent], "--diff")["tasks"]
    assert [t["changed"] for t in cleared] == [True, False]
    assert cleared[0]["diff"]["after"] == {}
    with open_store(store) as opened:
        kinds = [e.kind for e in reversed(opened.events(EventFilter(kinds=("override", "override_end"))))]
    assert kinds == ["override", "override_end"]


def test_bad_input_fails_the_task_naming_the_field(tmp_path: Path) -> None:
    store = str(tmp_path / "state.db")
    record_applied_plan(store, compute_plan(load_graph(EXAMPLE), now=1000.0).to_dict())
    ran = _play(tmp_path, store, [_task(**{**FROZEN, "expires_in": "{{ '40d' }}"})])
    assert ran["rc"] != 0
    assert "expires_in: 40d is longer than the 30 days" in ran["tasks"][0]["msg"]
