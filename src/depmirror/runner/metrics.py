"""The runner's Prometheus metrics, on a registry of its own (one per service, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from depmirror.fleet.plan_diff import DependencyChange


class RunnerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.alerts_received = Counter(
            "depmirror_runner_alerts_received_total",
            "Alerts received in valid webhook notifications, by alert status.",
            ["status"],
            registry=self.registry,
        )
        self.alerts_deduplicated = Counter(
            "depmirror_runner_alerts_deduplicated_total",
            "Alerts dropped because the same fingerprint, startsAt and status was already queued.",
            registry=self.registry,
        )
        self.requests_rejected = Counter(
            "depmirror_runner_requests_rejected_total",
            "Webhook requests refused, by HTTP status code.",
            ["code"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "depmirror_runner_decisions_total",
            "Events the runner recorded, by event kind and outcome.",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.actions = Counter(
            "depmirror_runner_actions_total",
            "Rollback and failback actions, by action and outcome (shadow: decided, not run).",
            ["action", "outcome"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "depmirror_runner_queue_depth",
            "Alerts queued and not yet decided.",
            registry=self.registry,
        )
        self.action_duration = Histogram(
            "depmirror_runner_action_duration_seconds",
            "Wall time of rollback and failback actions.",
            ["action"],
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
            registry=self.registry,
        )
        # Reconciliation's own metrics join this registry when `reconcile.enabled` (runner/reconcile.py):
        # a runner that does not reconcile exports none, so no alert reads a loop that is not there.
        self.reconcile: ReconcileMetrics | None = None

    def for_reconcile(self, frontend: str) -> ReconcileMetrics:
        if self.reconcile is None:
            self.reconcile = ReconcileMetrics(frontend, self.registry)
        return self.reconcile


# What a reconciliation pass ended with (docs/runner.md, "Reconciliation metrics"). The first four are the loop doing
# its job: the plan was applied or found applied, or every change waits by the rules (held, shadow mode).
RECONCILE_SUCCESS = ("noop", "applied", "held", "shadow")
RECONCILE_OUTCOMES = (
    *RECONCILE_SUCCESS,
    "failed",  # an adjust was launched and did not succeed (failed, or could not start)
    "skipped_gap",  # min_gap_seconds since the last launch has not passed
    "skipped_lease",  # another runner holds depmirror:reconcile
    "skipped_switchover",  # a switchover holds a dependency of the plan
    "prometheus_unreadable",  # every health verdict unknown: nothing is launched
    "plan_error",  # the graph or the applied-plan record cannot be planned from
    "error",  # the pass raised (a bug, the store down); the loop goes on
)
# What a dependency change does to its instances (change_kind below).
RECONCILE_CHANGES = ("added", "removed", "rf_up", "rf_down", "moved", "other")
PENDING_STATES = ("actionable", "held", "shadow")
# A skipped pass's cause (reconcile.PassResult.cause) -> its outcome.
SKIPPED = {
    "gap": "skipped_gap",
    "lease": "skipped_lease",
    "switchover": "skipped_switchover",
    "prometheus": "prometheus_unreadable",
    "plan": "plan_error",
    "error": "error",
}
# An adjust takes ~3 s (pyinfra) to ~35 s (a first Ansible apply) on the lab; timeout_seconds defaults to 600.
ADJUST_BUCKETS = (1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600)


class ReconcileMetrics:
    """`depmirror_reconcile_*`: what an alert on a stalled or failing reconciliation loop reads."""

    def __init__(self, frontend: str, registry: CollectorRegistry | None = None) -> None:
        self.frontend = frontend
        registry = registry or CollectorRegistry()
        self.passes = Counter(
            "depmirror_reconcile_passes_total",
            "Reconciliation passes, by how they ended.",
            ["outcome"],
            registry=registry,
        )
        self.adjust_duration = Histogram(
            "depmirror_reconcile_adjust_duration_seconds",
            "Wall time of the adjusts reconciliation launched, by frontend and the adjust's outcome.",
            ["frontend", "outcome"],
            buckets=ADJUST_BUCKETS,
            registry=registry,
        )
        self.changes = Counter(
            "depmirror_reconcile_dependency_changes_total",
            "Dependencies reconciliation launched an adjust for, by kind of change and the adjust's outcome.",
            ["change", "outcome"],
            registry=registry,
        )
        self.last_success = Gauge(
            "depmirror_reconcile_last_success_timestamp_seconds",
            "Unix time of the last pass that did all the rules allow: applied the plan, found it applied, or "
            "found every change held or shadowed (0: none since the runner started).",
            registry=registry,
        )
        self.pending = Gauge(
            "depmirror_reconcile_pending_dependencies",
            "Dependencies whose plan differs from the applied plan, as of the last pass that could plan.",
            ["state"],
            registry=registry,
        )
        # Every series an alert or increase() reads exists from the start, at 0.
        for outcome in RECONCILE_OUTCOMES:
            self.passes.labels(outcome)
        for state in PENDING_STATES:
            self.pending.labels(state).set(0)

    def passed(self, outcome: str, now: float) -> None:
        self.passes.labels(outcome).inc()
        if outcome in RECONCILE_SUCCESS:
            self.last_success.set(now)

    def differing(self, *, actionable: int = 0, held: int = 0, shadow: int = 0) -> None:
        for state, count in (("actionable", actionable), ("held", held), ("shadow", shadow)):
            self.pending.labels(state).set(count)

    def adjusted(self, outcome: str, duration_s: float, changes: list[str]) -> None:
        self.adjust_duration.labels(self.frontend, outcome).observe(duration_s)
        for change in changes:
            self.changes.labels(change, outcome).inc()


def pass_outcome(outcome: str, cause: str) -> str:
    """The metric's outcome (RECONCILE_OUTCOMES) for a pass that ended with reconcile.PassResult's `outcome`
    and `cause`. Pure."""
    if outcome == "launched":
        return "applied" if cause == "succeeded" else "failed"
    if outcome == "nothing":
        return "noop"
    if outcome in ("held", "shadow"):
        return outcome
    return SKIPPED.get(cause, "error")


def change_kind(change: DependencyChange) -> str:
    """What a change does to the dependency's instances: `added`/`removed` (not applied yet / gone from the
    plan), `rf_up`/`rf_down` (more/fewer instances planned than applied: an RF raised, or the instance a
    failover dropped from the routing put back), `moved` (as many, elsewhere or another primary), `other`
    (mode, kind, port or a stateful engine's commands). Pure."""
    if change.before is None:
        return "added"
    if change.after is None:
        return "removed"
    was, now = change.before.get("instances") or [], change.after.get("instances") or []
    if len(now) != len(was):
        return "rf_up" if len(now) > len(was) else "rf_down"
    if sorted(now) != sorted(was) or change.before.get("primary") != change.after.get("primary"):
        return "moved"
    return "other"
