"""Running one phase of a deploy with the pyinfra API: connect, prepare, execute, report what changed.

A deploy here is a sequence of phases (adjust: primaries, mirrors, load balancers, decommission), each a
pyinfra State of its own over the hosts it concerns. pyinfra's API mode orders operations per host only,
so a phase boundary is what makes every VM's primaries run before any VM's replicas, as Ansible's linear
plays do; and facts are read at the start of each phase, after what the previous one changed.

`run_phases` (adjust) first checks: one connection and one `DepmirrorHostState` per host, for every phase's
operations at once, decided without running anything. A phase runs only from the first one that would change
something: before it nothing has changed, so what the check read is still what each host has. A no-op pass
thus costs one round trip per host instead of a connection and a round trip per host and phase
(docs/pyinfra.md, "Speed").
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import gevent
from pyinfra import context
from pyinfra.api import Config, FactBase, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.facts import get_fact
from pyinfra.api.host import Host
from pyinfra.api.operation import OperationMeta, add_op
from pyinfra.api.operations import run_ops

from depmirror.errors import DepmirrorError
from depmirror.frontends.pyinfra.facts import DepmirrorHostState, HostState, Watch, merge_watches
from depmirror.frontends.pyinfra.inventory import Connection, build_inventory

# pyinfra logs every operation at INFO; the frontend reports what changed itself (docs/pyinfra.md).
logging.getLogger("pyinfra").setLevel(logging.WARNING)


class PhaseFailed(DepmirrorError):
    """A host could not be reached, or an operation failed on it; `phase` names where."""

    def __init__(self, message: str, phase: str) -> None:
        super().__init__(message)
        self.phase = phase


@dataclass(frozen=True, slots=True)
class OpResult:
    host: str
    name: str
    changed: bool


@dataclass
class PhaseResult:
    phase: str
    ops: list[OpResult] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def changed(self) -> list[OpResult]:
        return [op for op in self.ops if op.changed]


@dataclass(frozen=True, slots=True)
class Added:
    """An operation added on one host, under the name the report shows (pyinfra's API mode shares one
    operation record between hosts at the same position, so its own names mix hosts)."""

    host: str
    name: str
    meta: OperationMeta


AddOps = Callable[[State], list[Added]]


def add(state: State, host: Host, name: str, op: Any, *args: Any, **kwargs: Any) -> Added:
    return Added(host.name, name, add_op(state, op, *args, host=host, name=name, **kwargs)[host])


@dataclass(frozen=True, slots=True)
class PhaseOptions:
    connect_timeout: int = 5
    dry_run: bool = False  # prepare only: report what would change, change nothing (Ansible's --check)


def prefetch(state: State, fact: type[FactBase[Any]], kwargs_of: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One fact per host, with that host's own arguments, fetched from every host at once."""

    def one(host: Host) -> Any:
        with context.ctx_host.use(host):
            return get_fact(state, host, fact, kwargs=dict(kwargs_of[host.name]))

    with context.ctx_state.use(state):
        greenlets = {host.name: state.pool.spawn(one, host) for host in state.inventory if host.name in kwargs_of}
        gevent.joinall(list(greenlets.values()))
    return {name: greenlet.get() for name, greenlet in greenlets.items()}


@dataclass(frozen=True, slots=True)
class Phase:
    """One phase of `run_phases`: its hosts, what to read on each, and its operations given what was read."""

    name: str
    watch: Mapping[str, Watch]  # host -> DepmirrorHostState's arguments; its keys are the phase's hosts
    add_ops: Callable[[State, list[Host], Mapping[str, HostState]], list[Added]]


def run_phases(
    phases: list[Phase], document: Mapping[str, Any], connection: Connection, options: PhaseOptions
) -> list[PhaseResult]:
    """Check every phase at once (read-only), then run the phases from the first one that would change."""
    results = _check(phases, document, connection, options)
    if options.dry_run:
        return results
    started = False
    for index, phase in enumerate(phases):
        started = started or bool(results[index].changed)
        if started:
            results[index] = run_phase(phase.name, document, connection, list(phase.watch), _fresh(phase), options)
    return results


def _fresh(phase: Phase) -> AddOps:
    """The phase's operations on what each host has when the phase starts."""
    return lambda state: phase.add_ops(state, list(state.inventory), prefetch(state, DepmirrorHostState, phase.watch))


def _check(
    phases: list[Phase], document: Mapping[str, Any], connection: Connection, options: PhaseOptions
) -> list[PhaseResult]:
    """What each phase would change, from one read of every host: nothing runs (pyinfra's change check only
    evaluates each operation's commands). A phase's `seconds` is the whole check's."""
    started = time.monotonic()
    hosts = list(dict.fromkeys(host for phase in phases for host in phase.watch))
    results = [PhaseResult(phase.name, dry_run=options.dry_run) for phase in phases]
    if not hosts:
        return results
    watches = {h: merge_watches(*(p.watch[h] for p in phases if h in p.watch)) for h in hosts}
    state = _connected("check", document, connection, hosts, options)
    try:
        try:
            known = prefetch(state, DepmirrorHostState, watches)
        except PyinfraError as error:  # the state command failed on a host
            raise PhaseFailed(f"check: {type(error).__name__}: {error}", "check") from None
        for index, phase in enumerate(phases):
            try:
                added = phase.add_ops(state, [h for h in state.inventory if h.name in phase.watch], known)
            except PyinfraError as error:
                raise PhaseFailed(f"{phase.name}: {type(error).__name__}: {error}", phase.name) from None
            results[index].ops = _results(added, executed=False)
    finally:
        disconnect_all(state)
    seconds = round(time.monotonic() - started, 3)
    for result in results:
        result.seconds = seconds
    return results


def _connected(
    phase: str, document: Mapping[str, Any], connection: Connection, hosts: Collection[str], options: PhaseOptions
) -> State:
    """A State over `hosts`, every one connected; PhaseFailed names those that did not answer."""
    inventory = build_inventory(document, connection, only=set(hosts))
    state = State(inventory=inventory, config=Config(CONNECT_TIMEOUT=options.connect_timeout, FAIL_PERCENT=0))
    # With FAIL_PERCENT 0 pyinfra raises when any host fails to connect; the hosts themselves say which.
    with contextlib.suppress(PyinfraError):
        connect_all(state)
    unreachable = sorted(h.name for h in inventory if not h.connected)
    if unreachable:
        disconnect_all(state)
        raise PhaseFailed(f"{phase}: cannot connect over SSH to {', '.join(unreachable)}", phase)
    return state


def run_phase(
    phase: str,
    document: Mapping[str, Any],
    connection: Connection,
    hosts: Collection[str],
    add_ops: AddOps,
    options: PhaseOptions,
) -> PhaseResult:
    """Run `add_ops`' operations on `hosts`; PhaseFailed names the hosts and the first error of each."""
    started = time.monotonic()
    result = PhaseResult(phase, dry_run=options.dry_run)
    if not hosts:
        return result
    state = _connected(phase, document, connection, hosts, options)
    try:
        try:
            added = add_ops(state)
        except PyinfraError as error:  # a fact's command failed on a host while the operations were prepared
            raise PhaseFailed(f"{phase}: {type(error).__name__}: {error}", phase) from None
        if not options.dry_run:
            # A failed operation stops the phase; the failed operations say what happened, below.
            with contextlib.suppress(PyinfraError):
                run_ops(state)
        result.ops = _results(added, executed=not options.dry_run)
        failures = _failures(added) if not options.dry_run else []
        if failures:
            raise PhaseFailed(f"{phase}: " + "; ".join(failures), phase)
    finally:
        disconnect_all(state)
        result.seconds = round(time.monotonic() - started, 3)
    return result


def _results(added: list[Added], *, executed: bool) -> list[OpResult]:
    found = []
    for op in added:
        changed = (op.meta.is_complete() and op.meta.did_change()) if executed else bool(op.meta.will_change)
        found.append(OpResult(op.host, op.name, changed))
    return found


def _failures(added: list[Added]) -> list[str]:
    """Each failed host's first failed operation and what its command printed on stderr."""
    found: dict[str, str] = {}
    for op in added:
        if op.host in found:
            continue
        if op.meta.is_complete() and op.meta.did_error():
            said = (op.meta.stderr or op.meta.stdout).strip() or "(no output)"
            found[op.host] = f"{op.host}: {op.name!r} failed: {said}"
        elif not op.meta.is_complete():
            found[op.host] = f"{op.host}: {op.name!r} did not run (an earlier failure stopped it)"
    return list(found.values())
