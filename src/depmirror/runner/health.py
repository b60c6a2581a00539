"""The health re-check the runner does before acting, behind a small interface.

The Prometheus-backed checker lives with the health library; the runner only knows this protocol, and
loads a checker named in its config as `module.path:factory` (factory(options) -> HealthChecker).
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from depmirror.errors import ConfigError
from depmirror.health.view import HealthView, TargetHealth

__all__ = ["HealthChecker", "HealthView", "TargetHealth", "UnknownHealthChecker", "load_health_checker"]


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
