"""What a graph may say about a dependency's health queries (`dependencies.<name>.health`): part of the graph
model; `depmirror.health` turns it into PromQL."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SAMPLES = 3


@dataclass(frozen=True, slots=True)
class HealthSpec:
    """Custom PromQL for one dependency; None means the default derived from the dependency's kind.

    Each query is evaluated once per dependency and must return one series per instance carrying a
    `host` label (the VM's inventory name). `$dependency` in a query is replaced by the dependency's name.
    - `up`: 1 when the instance serves, 0 when not.
    - `latency`: seconds (the p99 from a histogram, or the probe duration).
    - `error_ratio`: failed / all requests, 0..1; NaN (no traffic) is ignored, not unknown.
    `samples`: consecutive bad samples before the verdict is `failing` (Argo's failureLimit).
    """

    up: str | None = None
    latency: str | None = None
    error_ratio: str | None = None
    samples: int = DEFAULT_SAMPLES

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
