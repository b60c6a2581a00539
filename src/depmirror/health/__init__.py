"""Health from Prometheus: PromQL per instance, a score 0..1, a multi-sample verdict, zone and system health.

Nothing is imported at module level so that `depmirror.graph.model` may import `depmirror.health.spec` without a
cycle, and so that importing the package does not load the HTTP client. Read docs/health.md for the
formula, the verdict rules and what `unknown` means.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from depmirror.graph.model import Graph
    from depmirror.health.queries import InstanceRef
    from depmirror.planner.state import HealthSnapshot


def collect_snapshot(
    graph: Graph,
    url: str,
    *,
    token: str | None = None,
    timeout: float = 5.0,
    instances: Iterable[InstanceRef] | None = None,
) -> tuple[HealthSnapshot, list[str]]:
    """The planner's HealthSnapshot from Prometheus, and warnings (why health is unknown, if it is).

    Without `instances`, every instance Prometheus has data on is judged. An unreachable Prometheus gives
    an empty snapshot (all unknown) and a warning, never an exception.
    """
    from depmirror.health.evaluate import fetch_health

    report = fetch_health(graph, url, instances, token=token, timeout=timeout)
    return report.snapshot(), list(report.warnings)
