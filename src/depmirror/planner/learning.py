"""Learning from the rollback history (`policy.learning` in the graph; off unless set): a dependency that
failed over repeatedly gets a higher minimum RF (or active-active mode), and a VM or zone that keeps failing
gets a placement penalty. Failovers are counted in a window ending at the newest one; the effect then halves
every half-life of quiet (no new failover), so a quiet month brings things back. The raise never goes above
the dependency's `max`, `max_raise` or what the cost budget pays for. Pure: the failures come in as plain
values (`fleet.history_report.failures_from_events` reads them from the store).

What the planner does with the result (planner/plan.py): the raised minimum is an input to its RF rule, so
the hysteresis applies to it like to any other; an RF it changes carries the reason `history: ...` (which
`adjust` records as the `rf_change` event's reason) and the ids of the events it rests on (`explain`).
Penalties order the VMs and zones new instances go to (planner/placement.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from depmirror.graph.model import LearningPolicy

__all__ = [
    "REASON",
    "Failure",
    "LearnedRf",
    "LearningPolicy",
    "Penalties",
    "burst",
    "decay",
    "learned_rf",
    "placement_penalties",
]

REASON = "history"


@dataclass(frozen=True, slots=True)
class Failure:
    """One failover of `dependency` away from `host` (in `zone`), at `time` (epoch seconds), event `event_id`."""

    time: float
    dependency: str
    host: str
    zone: str | None = None
    event_id: int | None = None


def decay(quiet_s: float, policy: LearningPolicy) -> float:
    """How much of an effect is left after `quiet_s` seconds without a new failure: 1, halving every half-life."""
    return 0.5 ** (max(0.0, quiet_s) / policy.half_life_s)


def burst(times: Iterable[float], now: float, policy: LearningPolicy) -> tuple[int, float | None]:
    """How many failures fall in the window that ends at the newest one (not after `now`), and that newest."""
    past = sorted(time for time in times if time <= now)
    if not past:
        return 0, None
    newest = past[-1]
    return sum(1 for time in past if newest - time <= policy.window_s), newest


@dataclass(frozen=True, slots=True)
class LearnedRf:
    min_rf: int  # the minimum RF the planner should use (the graph's when nothing was learned)
    raised_by: int = 0
    prefer_active_active: bool = False
    weight: float = 0.0
    reason: str = ""
    events: tuple[int, ...] = ()  # the history events it rests on, for `explain`


def learned_rf(
    dependency: str,
    failures: Iterable[Failure],
    now: float,
    policy: LearningPolicy,
    *,
    min_rf: int,
    max_rf: int,
    cost: float,
    budget_left: float | None,
    stateful: bool = False,
) -> LearnedRf:
    """The minimum RF the history asks for `dependency`: `min_rf` plus one `rf_step` per `failovers` decayed
    failovers, at most `max_raise` more, never above `max_rf`, and never more added instances than
    `budget_left` pays for at `cost` each (None: no budget)."""
    if not policy.enabled:
        return LearnedRf(min_rf=min_rf)
    own = [f for f in failures if f.dependency == dependency and f.time <= now]
    count, newest = burst((f.time for f in own), now, policy)
    steps = math.floor(count / policy.failovers + 1e-9) * policy.rf_step
    if newest is None or steps <= 0:
        return LearnedRf(min_rf=min_rf)
    left = decay(now - newest, policy)
    effect = steps * left
    steps = math.floor(effect + 0.5)  # round half up: the raise lasts about one half-life per step
    if steps <= 0:
        return LearnedRf(min_rf=min_rf, weight=round(effect, 3))
    own = [f for f in own if newest - f.time <= policy.window_s]
    caps = [(f"max_raise {policy.max_raise}", policy.max_raise), (f"max {max_rf}", max(0, max_rf - min_rf))]
    if budget_left is not None and cost > 0:
        caps.append((f"the cost budget ({budget_left:g} left)", max(0, math.floor(budget_left / cost + 1e-9))))
    wanted = min([steps, *(cap for _, cap in caps)])
    held = next((f" (held by {name})" for name, cap in caps if cap == wanted), "") if wanted < steps else ""
    events = tuple(sorted(f.event_id for f in own if f.event_id is not None))
    reason = (
        f"{REASON}: {count} failovers within {policy.window_s / 86400:g}d ({policy.failovers:g} per step), the "
        f"last {(now - newest) / 3600:.1f}h ago ({left:.0%} of the effect left, half-life "
        f"{policy.half_life_s / 86400:g}d) raise the minimum RF {min_rf} -> {min_rf + wanted}{held}"
    )
    return LearnedRf(
        min_rf=min_rf + wanted,
        raised_by=wanted,
        prefer_active_active=policy.active_active and not stateful,
        weight=round(effect, 3),
        reason=reason,
        events=events,
    )


@dataclass(frozen=True, slots=True)
class Penalties:
    """Placement penalties 0..1 per VM and per zone, with the events behind each. Placement takes a penalised
    VM only after every unpenalised VM of its zone (the higher the penalty, the later), and a penalised zone
    after the zones that hold as many instances of the dependency: spreading across zones comes first."""

    vms: Mapping[str, float] = field(default_factory=dict)
    zones: Mapping[str, float] = field(default_factory=dict)
    events: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # "vm:HOST" / "zone:ZONE" -> ids


def placement_penalties(failures: Iterable[Failure], now: float, policy: LearningPolicy) -> Penalties:
    """A VM (or zone) with `placement_failures` or more failures in a window gets `placement_penalty` per
    failure from that count on (capped at 1), decaying like the RF raise; below 0.05 it is dropped."""
    if not policy.enabled:
        return Penalties()
    by_key: dict[str, list[Failure]] = {}
    for failure in failures:
        if failure.time <= now:
            by_key.setdefault(f"vm:{failure.host}", []).append(failure)
            if failure.zone:
                by_key.setdefault(f"zone:{failure.zone}", []).append(failure)
    vms: dict[str, float] = {}
    zones: dict[str, float] = {}
    events: dict[str, tuple[int, ...]] = {}
    for key, group in sorted(by_key.items()):
        count, newest = burst((f.time for f in group), now, policy)
        if newest is None or count < policy.placement_failures:
            continue
        full = min(1.0, policy.placement_penalty * (count - policy.placement_failures + 1))
        penalty = round(full * decay(now - newest, policy), 3)
        if penalty < 0.05:
            continue
        kind, _, name = key.partition(":")
        (vms if kind == "vm" else zones)[name] = penalty
        events[key] = tuple(
            sorted(f.event_id for f in group if f.event_id is not None and newest - f.time <= policy.window_s)
        )
    return Penalties(vms=vms, zones=zones, events=events)
