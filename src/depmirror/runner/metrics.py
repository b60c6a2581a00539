"""The runner's Prometheus metrics, on a registry of its own (one per service, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
