"""What a health re-check saw, as the runner's checkers report it: the alerting instance's verdict and its
dependency's other instances'. Plain values, so the Prometheus-backed checker (`depmirror.health.checker`)
and the runner share them without the health package knowing the runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

TargetHealth = Literal["healthy", "unhealthy", "unknown"]


@dataclass(frozen=True, slots=True)
class HealthView:
    """What the checker saw: the alerting instance, every other instance of the dependency, and why.

    `candidates` is empty when the checker cannot list the dependency's instances: that is "unknown",
    not "no mirror".
    """

    failed_instance: TargetHealth
    candidates: dict[str, TargetHealth] = field(default_factory=dict)
    source: str = "none"
    inputs: dict[str, Any] = field(default_factory=dict)

    def healthy_targets(self) -> list[str]:
        return sorted(name for name, verdict in self.candidates.items() if verdict == "healthy")
