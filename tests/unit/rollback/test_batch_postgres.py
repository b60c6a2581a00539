"""The fast path moves PostgreSQL state: real PostgreSQL servers (a primary, two streaming standbys) and a real
nginx (stream proxy) on loopback, each "VM" a loopback address of this machine.

The transport runs what the fast path sends a VM through `sh -c`, as sshd would, with two stand-ins: the
VM's /var/run/postgresql is its server's own socket directory (three servers share this machine and a
port), and `systemctl stop <unit>` stops that server (pg_ctl). A VM that is down does not answer at all.
What a person checks: the most advanced standby is promoted (not the first by name), the load balancer
reaches it, every row written before the fault is there, the other standby streams from it; a standby
past the lag gate is refused with the reason and nothing is routed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.integration.health_services import wait_until
from tests.local_nginx import Fleet, LocalLoadBalancer, loopback_fleet, options_for, serve_first_release

from depmirror.rollback.flow import Health
from depmirror.rollback.postgres_state import SOCKET_DIR
from depmirror.rollback.remote import RemoteError
from depmirror.rollback.switchover import FastPath, FastPathConfig, Switch
from depmirror.store import EventFilter, open_store

ROOT = Path(__file__).resolve().parents[3]
PG_BIN = Path(os.environ.get("DEPMIRROR_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
ROWS = 500


def _as_postgres(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True, timeout=timeout)


@dataclass
class Server:
    host: str
    address: str
    port: int
    data: Path
    sockets: Path

    def settings(self) -> str:
        return (
            f"listen_addresses = '{self.address}'\nport = {self.port}\nunix_socket_directories = '{self.sockets}'\n"
            "wal_level = replica\nmax_wal_senders = 10\nwal_keep_size = 64MB\nhot_standby = on\n"
            "recovery_target_timeline = 'latest'\nfsync = off\nshared_buffers = 16MB\nmax_connections = 20\n"
        )

    def start(self) -> None:
        log = self.data.parent / f"{self.host}.log"
        done = _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(log), "-w", "-t", "60", "start")
        assert done.returncode == 0, done.stdout + done.stderr + (log.read_text() if log.exists() else "")

    def stop(self, mode: str = "immediate") -> None:
        if (self.data / "postmaster.pid").exists():
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def sql(self, statement: str) -> str:
        with psycopg.connect(
            host=self.address, port=self.port, user="postgres", dbname="postgres", autocommit=True, connect_timeout=3
        ) as conn:
            cursor = conn.execute(statement)
            row = cursor.fetchone() if cursor.description else None
        return "" if row is None else "|".join(str(v) for v in row)


class Vms(LocalLoadBalancer):
    """The transport: releases to the local nginx; a VM's commands run here (see the module's docstring)."""

    def __init__(self, root: Path, servers: dict[str, Server]) -> None:
        super().__init__(root)
        self.servers = servers  # address -> server
        self.down: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.answers: dict[tuple[str, str], tuple[int, str, str]] = {}  # (address, word in the command): forced

    def run(self, address: str, command: str, stdin: str = "", timeout_s: float = 10.0) -> tuple[int, str, str]:
        self.calls.append((address, command))
        if address in self.down:
            raise RemoteError(f"cannot open SSH to root@{address}: timed out")
        server = self.servers.get(address)
        if server is None:
            return super().run(address, command, stdin, timeout_s)
        for (at, word), answer in self.answers.items():
            if at == address and word in command:
                return answer
        if command.startswith("systemctl stop "):
            server.stop()
            return 0, "", ""
        done = subprocess.run(
            ["sh", "-c", command.replace(SOCKET_DIR, str(server.sockets))],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        return done.returncode, done.stdout, done.stderr


@dataclass
class Cluster:
    fleet: Fleet
    fast: FastPath
    vms: Vms
    servers: dict[str, Server]  # host -> server
    primary: str
    standbys: list[str]
    states: dict[str, str] = field(default_factory=dict)  # host -> health state the "Prometheus" reports

    def switch(self) -> Any:
        name = self.fleet.plan[0]["name"]
        return self.fast.switch_batch([Switch(name, self.primary, self.fleet.store_url)]).outcomes[0]

    def position(self, host: str) -> int:
        sql = "SELECT pg_wal_lsn_diff(COALESCE(pg_last_wal_receive_lsn(), pg_current_wal_lsn()), '0/0')::bigint"
        return int(self.servers[host].sql(sql))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    if not (PG_BIN / "initdb").exists() or os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip(f"needs root and Debian's PostgreSQL in {PG_BIN}")
    fleet = loopback_fleet(tmp_path / "fleet", 1, vms_per_zone=1, kind="postgresql")
    item = fleet.plan[0]
    # The servers' files must be the postgres user's all the way down: pytest's tmp_path is root's (0700).
    root = Path(tempfile.mkdtemp(prefix="depmirror-batchpg-"))
    postgres = pwd.getpwnam("postgres")
    os.chown(root, postgres.pw_uid, postgres.pw_gid)
    servers = {}
    for instance in item["instances"]:
        sockets = root / f"{instance['host']}-sockets"
        sockets.mkdir()
        os.chown(sockets, postgres.pw_uid, postgres.pw_gid)
        servers[instance["host"]] = Server(
            instance["host"], instance["address"], int(item["port"]), root / instance["host"], sockets
        )
    primary = item["primary"]["host"]
    standbys = sorted(h for h in servers if h != primary)
    vms = Vms(tmp_path / "lb", {s.address: s for s in servers.values()})
    try:
        _build(servers, primary, standbys)
        states = {h: "healthy" for h in standbys} | {primary: "failing"}
        config = FastPathConfig(graph=fleet.graph_path, collection=ROOT, nginx=options_for(tmp_path / "lb"))
        fast = FastPath(config, transport=vms, health=_reported(states))
        world = Cluster(fleet, fast, vms, servers, primary, standbys, states)
        serve_first_release(fast, fleet, vms)
        try:
            yield world
        finally:
            world.fast.close()
            vms.stop()
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _reported(states: dict[str, str]) -> Callable[[Collection[str]], dict[str, Health]]:
    """Health as Prometheus reports it: the state of each host, as the test sets it (read at each switch)."""

    def source(names: Collection[str]) -> dict[str, Health]:
        scores: dict[str, float | None] = {h: 1.0 if s == "healthy" else 0.0 for h, s in states.items()}
        return {name: Health(scores, {}, [], [], dict(states)) for name in names}

    return source


def _build(servers: dict[str, Server], primary: str, standbys: list[str]) -> None:
    p = servers[primary]
    done = _as_postgres(str(PG_BIN / "initdb"), "-D", str(p.data), "-U", "postgres", "--auth-local=peer")
    assert done.returncode == 0, done.stderr
    (p.data / "postgresql.conf").write_text(p.settings())
    (p.data / "pg_hba.conf").write_text(
        "local all postgres peer\nhost replication postgres 127.0.0.0/8 trust\nhost all postgres 127.0.0.0/8 trust\n"
    )
    p.start()
    for host in standbys:
        s = servers[host]
        done = _as_postgres(
            str(PG_BIN / "pg_basebackup"), "-h", p.address, "-p", str(p.port), "-U", "postgres", "-D", str(s.data)
        )
        assert done.returncode == 0, done.stderr
        (s.data / "postgresql.conf").write_text(s.settings())
        (s.data / "standby.signal").touch()
        # As the mirror role writes it: plain key=value pairs, which a switchover rewrites (host, port).
        (s.data / "postgresql.auto.conf").write_text(
            f"primary_conninfo = 'host={p.address} port={p.port} user=postgres application_name={host}'\n"
        )
        subprocess.run(["chown", "-R", "postgres:postgres", str(s.data)], check=True)
        s.start()


def _rows(server: Server, first: int, last: int) -> None:
    server.sql("CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY)")
    server.sql(f"INSERT INTO t SELECT generate_series({first}, {last})")


def _events(store_url: str, kind: str) -> list[Any]:
    with open_store(store_url) as store:
        return store.events(EventFilter(kinds=(kind,)))


def _primary_of(store_url: str, name: str) -> str | None:
    with open_store(store_url) as store:
        return store.primaries().get(name)


def _behind_first_by_name(world: Cluster) -> tuple[str, str]:
    """The standby first by name stops receiving, more rows go to the other one only, the primary dies: the
    second is the more advanced. (first, second)."""
    first, second = world.standbys
    p = world.servers[world.primary]
    _rows(p, 1, ROWS)
    moved = world.position(world.primary)
    wait_until(lambda: min(world.position(h) for h in world.standbys) >= moved, 20, "both standbys to catch up")
    world.servers[first].stop("fast")
    _rows(p, ROWS + 1, 2 * ROWS)
    moved = world.position(world.primary)
    wait_until(lambda: world.position(second) >= moved, 20, f"{second} to receive the last rows")
    p.stop()  # the primary dies, and its host with it: SSH to it does not answer
    world.vms.down.add(p.address)
    world.servers[first].start()
    return first, second


def test_the_most_advanced_standby_is_promoted_routed_and_followed_by_the_other(cluster: Cluster) -> None:
    world = cluster
    first, second = _behind_first_by_name(world)
    name = world.fleet.plan[0]["name"]

    outcome = world.switch()

    assert outcome.status == "succeeded", outcome.error
    event = outcome.event
    assert event["target"] == second, "the lag gate (max lag 0) must choose the most advanced, not the first"
    offsets = event["inputs"]["replication_offsets"]
    assert set(offsets) == {first, second} and offsets[second] > offsets[first]
    assert event["details"]["path"] == "fast" and event["details"]["fenced_first"] is False  # its host is gone
    assert _primary_of(world.fleet.store_url, name) == second
    target = world.servers[second]
    through_lb = Server("lb", world.fleet.lb_address, target.port, target.data, target.sockets)
    # nginx's old workers may take a connection or two while the reload hands over (milliseconds).
    served = "SELECT pg_is_in_recovery(), host(inet_server_addr())"
    wait_until(lambda: through_lb.sql(served) == f"False|{target.address}", 5, "the LB to reach the new primary")
    assert through_lb.sql("SELECT count(*) FROM t") == str(2 * ROWS), "a row written before the fault is gone"
    through_lb.sql("INSERT INTO t VALUES (0)")  # the new primary takes writes
    other = world.servers[first]
    wait_until(lambda: other.sql("SELECT count(*) FROM t") == str(2 * ROWS + 1), 20, f"{first} to follow {second}")
    assert other.sql("SELECT sender_host FROM pg_stat_wal_receiver") == target.address
    assert world.vms.reloads() == 1


def test_an_old_primary_that_still_answers_is_fenced_before_the_positions_are_read(cluster: Cluster) -> None:
    world = cluster
    p = world.servers[world.primary]
    _rows(p, 1, ROWS)  # it still runs: Prometheus says failing (say, too slow), its host answers
    outcome = world.switch()
    assert outcome.status == "succeeded", outcome.error
    assert outcome.event["details"]["fenced_first"] is True and not p.running()
    to_primary = [command for address, command in world.vms.calls if address == p.address]
    assert len(to_primary) >= 1 and to_primary[0].startswith("systemctl stop ")
    first_read = next(i for i, (_, command) in enumerate(world.vms.calls) if "pg_wal_lsn_diff" in command)
    fence_at = next(i for i, (address, _) in enumerate(world.vms.calls) if address == p.address)
    assert fence_at < first_read, "the old primary must be fenced before the positions are read"


def test_a_standby_past_the_lag_gate_is_refused_with_the_reason_and_nothing_is_routed(cluster: Cluster) -> None:
    world = cluster
    first, second = _behind_first_by_name(world)
    # The most advanced one is failing too: the only healthy standby is behind it, past max lag 0.
    world.states[second] = "failing"
    name = world.fleet.plan[0]["name"]

    outcome = world.switch()

    assert outcome.status == "refused"
    assert "behind" in outcome.event["reason"] and first in outcome.event["reason"], outcome.event["reason"]
    assert set(outcome.event["inputs"]["replication_offsets"]) == {first, second}
    assert world.vms.reloads() == 0 and _primary_of(world.fleet.store_url, name) == world.primary
    assert world.servers[first].sql("SELECT pg_is_in_recovery()") == "True", "a refused standby was promoted"
    (refused,) = _events(world.fleet.store_url, "refused")
    assert refused.reason == outcome.event["reason"] and refused.details["path"] == "fast"


def test_a_failing_promotion_is_recorded_and_routes_nothing(cluster: Cluster) -> None:
    world = cluster
    _, second = _behind_first_by_name(world)
    target = world.servers[second]
    world.vms.answers[(target.address, "pg_promote")] = (
        2,
        "",
        "psql: error: FATAL: the database system is shutting down",
    )
    name = world.fleet.plan[0]["name"]

    outcome = world.switch()

    assert outcome.status == "failed" and outcome.phase == "migrate"
    assert "did not become a primary" in outcome.event["reason"] and "shutting down" in outcome.event["reason"]
    assert world.vms.reloads() == 0 and _primary_of(world.fleet.store_url, name) == world.primary
    (failed,) = _events(world.fleet.store_url, "rollback")
    assert (failed.outcome, failed.details["phase"], failed.details["path"]) == ("failed", "migrate", "fast")


def test_an_unreachable_standby_is_no_candidate_and_the_other_is_promoted(cluster: Cluster) -> None:
    world = cluster
    first, second = world.standbys
    p = world.servers[world.primary]
    _rows(p, 1, ROWS)
    moved = world.position(world.primary)
    wait_until(lambda: min(world.position(h) for h in world.standbys) >= moved, 20, "both standbys to catch up")
    p.stop()
    world.vms.down.add(p.address)
    # The first by name is healthy in Prometheus (its server answers the probe) but SSH to its VM fails:
    # its position cannot be read, so it cannot be promoted either.
    world.vms.down.add(world.servers[first].address)

    outcome = world.switch()

    assert outcome.status == "succeeded", outcome.error
    assert outcome.event["target"] == second
    assert set(outcome.event["inputs"]["replication_offsets"]) == {second}
    assert outcome.event["details"]["warnings"] == [f"not repointed (adjust repairs): [{first!r}]"]


def test_every_standby_unreachable_is_refused_and_nothing_is_promoted(cluster: Cluster) -> None:
    world = cluster
    for server in world.servers.values():
        world.vms.down.add(server.address)
    outcome = world.switch()
    assert outcome.status == "refused"
    assert "could not be read" in outcome.event["reason"], outcome.event["reason"]
    assert world.vms.reloads() == 0
    assert all(world.servers[h].sql("SELECT pg_is_in_recovery()") == "True" for h in world.standbys)
