"""The fast path moves the state of a `stateful:` engine with its own argv lists; a real nginx on loopback.

Each "VM" is a directory here: the transport runs the one command line the fast path sends through `sh -c`
(as sshd would) in that VM's directory, so the graph's commands can be the same on every VM and still
read and leave per-VM files: `lag` prints the VM's `lag` file, `fence` and `promote` leave a mark.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.local_nginx import Backends, Fleet, LocalLoadBalancer, loopback_fleet, options_for, serve_first_release

from depmirror.fleet.applied import record_applied_plan
from depmirror.graph.load import load_graph
from depmirror.planner.plan import compute_plan
from depmirror.rollback.remote import RemoteError
from depmirror.rollback.switchover import FastPath, FastPathConfig, Switch
from depmirror.store import open_store

ROOT = Path(__file__).resolve().parents[3]
DEAD = "zone-a"
STATEFUL = {
    "lag": ["cat", "lag"],
    "fence": ["sh", "-c", "echo fenced >> marks"],
    "promote": ["sh", "-c", "test ! -e refuse || { cat refuse >&2; exit 3; }; echo promoted >> marks"],
}


class Vms(LocalLoadBalancer):
    def __init__(self, root: Path, homes: dict[str, Path]) -> None:
        super().__init__(root)
        self.homes = homes  # address -> the VM's directory
        self.down: set[str] = set()
        self.calls: list[tuple[str, str]] = []

    def run(self, address: str, command: str, stdin: str = "", timeout_s: float = 10.0) -> tuple[int, str, str]:
        self.calls.append((address, command))
        if address in self.down:
            raise RemoteError(f"cannot open SSH to root@{address}: timed out")
        home = self.homes.get(address)
        if home is None:
            return super().run(address, command, stdin, timeout_s)
        if command.startswith("systemctl "):
            return 0, "", ""  # the best-effort unit stop after the switch: no units here
        done = subprocess.run(
            ["sh", "-c", command], cwd=home, input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        return done.returncode, done.stdout, done.stderr


@dataclass
class Engine:
    fleet: Fleet
    vms: Vms
    homes: dict[str, Path]  # host -> the VM's directory
    primary: str
    standbys: list[str]
    tmp: Path

    def fast(self, failing: tuple[str, ...] = (), **config: Any) -> FastPath:
        def health(names: Any) -> dict[str, Any]:
            from depmirror.rollback.flow import Health

            states = {h: "failing" if h in (self.primary, *failing) else "healthy" for h in self.homes}
            scores: dict[str, float | None] = {h: 0.0 if s == "failing" else 1.0 for h, s in states.items()}
            return {name: Health(scores, {}, [], [], states) for name in names}

        settings = FastPathConfig(
            graph=self.fleet.graph_path, collection=ROOT, nginx=options_for(self.tmp / "lb"), **config
        )
        fast = FastPath(settings, transport=self.vms, health=health)
        if self.vms.pid() is None:
            serve_first_release(fast, self.fleet, self.vms)
        return fast

    def switch(self, fast: FastPath) -> Any:
        try:
            return fast.switch_batch([Switch(self.name, self.primary, self.fleet.store_url)]).outcomes[0]
        finally:
            fast.close()

    @property
    def name(self) -> str:
        return str(self.fleet.plan[0]["name"])

    def marks(self, host: str) -> list[str]:
        marks = self.homes[host] / "marks"
        return marks.read_text().split() if marks.exists() else []

    def primary_now(self) -> str | None:
        with open_store(self.fleet.store_url) as store:
            return store.primaries().get(self.name)


def _with_stateful(fleet: Fleet) -> Fleet:
    """The loopback fleet's graph with a `stateful:` block, planned and recorded again."""
    data = yaml.safe_load(fleet.graph_path.read_text())
    for spec in data["dependencies"].values():
        spec["kind"] = "tcp"
        spec["stateful"] = STATEFUL
    fleet.graph_path.write_text(yaml.safe_dump(data))
    graph = load_graph(fleet.graph_path)
    plan = compute_plan(graph, None, None, 0.0).to_dict()
    # A store of its own: recording the plan again in the first one would keep the old entry (the record
    # changes only when RF, mode, primary or placement do).
    store_url = f"sqlite:///{fleet.graph_path.parent / 'stateful.db'}"
    record_applied_plan(store_url, plan)
    return Fleet(fleet.graph_path, store_url, graph, plan["dependencies"], fleet.lb_address)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    fleet = _with_stateful(loopback_fleet(tmp_path / "fleet", 1, vms_per_zone=1, kind="tcp"))
    item = fleet.plan[0]
    assert item["mode"] == "active-passive" and item["stateful_commands"]["lag"] == ["cat", "lag"]
    homes = {}
    for instance in item["instances"]:
        homes[instance["host"]] = tmp_path / "vms" / instance["host"]
        homes[instance["host"]].mkdir(parents=True)
        (homes[instance["host"]] / "lag").write_text("0\n")
    vms = Vms(tmp_path / "lb", {i["address"]: homes[i["host"]] for i in item["instances"]})
    backends = Backends(tmp_path / "backends", fleet.listens(except_zone=DEAD))
    backends.start()
    primary = item["primary"]["host"]
    world = Engine(fleet, vms, homes, primary, sorted(h for h in homes if h != primary), tmp_path)
    try:
        yield world
    finally:
        vms.stop()
        backends.stop()


def test_the_least_lagging_replica_is_promoted_after_the_old_primary_is_fenced(engine: Engine) -> None:
    first, second = engine.standbys
    (engine.homes[first] / "lag").write_text("5\n")
    outcome = engine.switch(engine.fast())
    assert outcome.status == "succeeded", outcome.error
    assert outcome.event["target"] == second, "the lag gate (max lag 0) must choose the least lagging"
    assert outcome.event["inputs"]["replication_offsets"] == {first: -5, second: 0}
    assert engine.marks(engine.primary) == ["fenced"] and engine.marks(second) == ["promoted"]
    assert engine.marks(first) == [], "promote runs on the target only"
    vms = {i["address"] for i in engine.fleet.plan[0]["instances"]}
    # In order: fence, the lags, promote (the unit stop after the switch is the usual best-effort fence).
    commands = [c for a, c in engine.vms.calls if a in vms and not c.startswith("systemctl ")]
    assert "fenced" in commands[0] and commands[1:3] == ["cat lag"] * 2 and "promoted" in commands[3], commands
    assert engine.primary_now() == second and engine.vms.reloads() == 1
    assert outcome.event["details"]["path"] == "fast" and outcome.event["details"]["fenced_first"] is True


def test_a_larger_max_lag_lets_a_healthier_lagging_replica_win_and_past_it_is_refused(engine: Engine) -> None:
    first, second = engine.standbys
    (engine.homes[first] / "lag").write_text("5\n")
    refused = engine.switch(engine.fast(failing=(second,), stateful_max_lag=4))
    assert refused.status == "refused" and "behind" in refused.event["reason"], refused.event["reason"]
    assert engine.marks(first) == [] and engine.vms.reloads() == 0 and engine.primary_now() == engine.primary
    won = engine.switch(engine.fast(failing=(second,), stateful_max_lag=5))
    assert won.status == "succeeded" and won.event["target"] == first


def test_a_failing_promote_is_recorded_with_its_words_and_routes_nothing(engine: Engine) -> None:
    first, second = engine.standbys
    for host in (first, second):
        (engine.homes[host] / "refuse").write_text("not a replica of anything\n")
    outcome = engine.switch(engine.fast())
    assert outcome.status == "failed" and outcome.phase == "migrate"
    assert "exited 3: not a replica of anything" in outcome.event["reason"], outcome.event["reason"]
    assert engine.vms.reloads() == 0 and engine.primary_now() == engine.primary


@pytest.mark.parametrize("printed", ["", "-1", "lots", "1e3", "5 7"])
def test_a_replica_whose_lag_is_not_an_integer_is_no_candidate(engine: Engine, printed: str) -> None:
    first, second = engine.standbys
    (engine.homes[first] / "lag").write_text(printed)
    outcome = engine.switch(engine.fast())
    assert outcome.status == "succeeded" and outcome.event["target"] == second
    assert set(outcome.event["inputs"]["replication_offsets"]) == {second}


def test_a_plan_without_its_commands_fails_the_switch_instead_of_routing_to_a_replica(engine: Engine) -> None:
    plan = compute_plan(engine.fleet.graph, None, None, 0.0).to_dict()
    for item in plan["dependencies"]:
        del item["stateful_commands"]  # a plan applied before the graph said `stateful:`
    stale = f"sqlite:///{engine.tmp / 'stale.db'}"
    record_applied_plan(stale, plan)
    engine.fleet = Fleet(
        engine.fleet.graph_path, stale, engine.fleet.graph, plan["dependencies"], engine.fleet.lb_address
    )
    outcome = engine.switch(engine.fast())
    assert outcome.status == "failed" and outcome.phase == "decide"
    assert "no way to move" in outcome.event["reason"] and "adjust.yml" in outcome.event["reason"]
    assert engine.vms.reloads() == 0 and all(engine.marks(h) == [] for h in engine.homes)
