"""The health re-check the runner does before acting, behind a small interface.

The Prometheus-backed checker lives with the health library; the runner only knows this protocol, and
loads a checker named in its config as `module.path:factory` (factory(options) -> HealthChecker).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from depmirror.errors import ConfigError

Verdict = Literal["healthy", "unhealthy", "unknown"]


@dataclass(frozen=True, slots=True)
class HealthView:
    """What the checker saw: the alerting instance, every other instance of the dependency, and why.

    `candidates` is empty when the checker cannot list the dependency's instances: that is "unknown",
    not "no mirror".
    """

    failed_instance: Verdict
    candidates: dict[str, Verdict] = field(default_factory=dict)
    source: str = "none"
    inputs: dict[str, Any] = field(default_factory=dict)

    def healthy_targets(self) -> list[str]:
        return sorted(name for name, verdict in self.candidates.items() if verdict == "healthy")


class HealthChecker(Protocol):
    async def check(self, dependency: str, failed_instance: str) -> HealthView: ...


class UnknownHealthChecker:
    """The default: knows nothing, so every verdict is unknown (and the runner refuses by default)."""

    async def check(self, dependency: str, failed_instance: str) -> HealthView:
        return HealthView(failed_instance="unknown", source="none")


def load_health_checker(spec: str, options: dict[str, Any], config_file: str) -> HealthChecker:
    if spec == "none":
        return UnknownHealthChecker()
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ConfigError(
            config_file,
            "health.checker",
            f"cannot load {spec}: {error}",
            "use none or an importable module.path:factory",
        ) from error
    checker: HealthChecker = factory(options)
    return checker
