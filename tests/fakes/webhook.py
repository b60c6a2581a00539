"""Stand-ins for tests of the runner: webhook payloads as Alertmanager 0.25 sends them, a health table and
an Action that records what it was asked. Named fakes; the real parts are in src/depmirror/runner."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from depmirror.runner.actions import ActionRequest, ActionResult, Started
from depmirror.runner.health import HealthView

TOKEN = "t0ken-for-tests-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alert(
    dependency: str = "payments",
    instance: str = "payments-a",
    status: str = "firing",
    fingerprint: str = "f1",
    starts_at: str = "2026-01-01T00:00:00.000000001Z",
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "DependencyDown", "dependency": dependency, "instance": instance, **labels},
        "annotations": {"summary": "down"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.invalid/graph",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="DependencyDown"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "depmirror",
        "groupLabels": {"alertname": "DependencyDown"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.invalid",
        "alerts": list(alerts),
    }


class StaticHealth:
    """A HealthChecker answering from a table the test writes (the runner's re-check input)."""

    def __init__(self, failed: str = "unhealthy", candidates: dict[str, str] | None = None) -> None:
        self.failed = failed
        self.candidates = candidates or {}

    async def check(self, dependency: str, failed_instance: str) -> HealthView:
        return HealthView(
            failed_instance=self.failed,  # type: ignore[arg-type]
            candidates=dict(self.candidates),  # type: ignore[arg-type]
            source="test-table",
        )


@dataclass
class RecordingAction:
    """An Action that records what it was asked to do and answers with a fixed outcome."""

    outcome: str = "succeeded"
    target: str | None = "payments-b"
    requests: list[ActionRequest] = field(default_factory=list)
    followed: list[str] = field(default_factory=list)
    name: str = "recording"

    async def run(self, request: ActionRequest, started: Started) -> ActionResult:
        self.requests.append(request)
        await started(f"job-{len(self.requests)}")
        # As failback.yml with depmirror_move_primary_back: the recovered instance is primary again.
        target = request.instance if request.kind == "failback" else self.target
        return ActionResult(outcome=self.outcome, target=target, detail="recorded")  # type: ignore[arg-type]

    async def problems(self) -> list[str]:
        return []

    async def follow(self, external_id: str) -> ActionResult | None:
        self.followed.append(external_id)
        return ActionResult(outcome="succeeded", target=self.target, detail=f"followed {external_id}")
