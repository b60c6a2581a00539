"""The health score of one sample and the verdict over the last N samples: pure functions, no I/O.

score = up x min(latency part, error part), each part 1 within its SLO, falling linearly to 0 at twice
the SLO: part = clamp(2 - value / slo, 0, 1). Missing latency or error data leaves that part out; missing
or NaN `up` makes the sample unknown. See docs/health.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from depmirror.graph.model import Slo

HealthBand = Literal["healthy", "degraded", "failing", "unknown"]
STATES: tuple[HealthBand, ...] = ("healthy", "degraded", "failing", "unknown")


@dataclass(frozen=True, slots=True)
class Sample:
    """What Prometheus said about one instance at one step; None is 'no data' (missing, stale or NaN)."""

    at: float
    up: float | None
    latency: float | None = None
    error_ratio: float | None = None
    stale: bool = False
    score: float | None = field(default=None)

    def to_dict(self) -> dict[str, float | bool | None]:
        return {
            "at": self.at,
            "up": self.up,
            "latency": self.latency,
            "error_ratio": self.error_ratio,
            "stale": self.stale,
            "score": self.score,
        }


def known(value: float | None) -> float | None:
    """NaN and infinities are no data: a 0/0 error ratio (no traffic) says nothing about health."""
    return value if value is not None and math.isfinite(value) else None


def part(value: float | None, slo: float) -> float | None:
    """1 within the SLO, 0 at twice the SLO and beyond, linear between."""
    value = known(value)
    if value is None:
        return None
    if slo <= 0:
        return 1.0 if value <= 0 else 0.0
    return min(1.0, max(0.0, 2.0 - value / slo))


def score(up: float | None, latency_s: float | None, error_ratio: float | None, slo: Slo) -> float | None:
    """The documented score 0..1, or None (unknown) when `up` itself has no data."""
    up = known(up)
    if up is None:
        return None
    if up < 0.5:
        return 0.0
    parts = (part(latency_s, slo.latency_ms / 1000.0), part(error_ratio, slo.error_ratio))
    return min((p for p in parts if p is not None), default=1.0)


def scored(sample: Sample, slo: Slo) -> Sample:
    value = None if sample.stale else score(sample.up, sample.latency, sample.error_ratio, slo)
    return Sample(sample.at, sample.up, sample.latency, sample.error_ratio, sample.stale, value)


@dataclass(frozen=True, slots=True)
class Decision:
    state: HealthBand
    score: float | None
    reason: str


def decide(samples: list[Sample], needed: int, unhealthy: float) -> Decision:
    """The verdict from scored samples, oldest first.

    - unknown: no samples, or the newest has no data (missing, stale, NaN).
    - failing: the newest `needed` samples are all bad (score < unhealthy). An unknown sample breaks the
      run, so missing data never pushes an instance towards a destructive action.
    - degraded: some bad sample among the newest `needed`, or the newest score is below 1 (an SLO is
      breached) without being bad `needed` times in a row.
    - healthy: otherwise.
    The verdict's score is the best among the newest `needed` known samples, and is below `unhealthy` only
    when the verdict is failing: one bad sample alone never reads as unhealthy to the planner.
    """
    if not samples or samples[-1].score is None:
        why = "no samples" if not samples else ("stale data" if samples[-1].stale else "no data")
        return Decision("unknown", None, f"{why} for the newest sample")
    window = samples[-needed:]
    run = 0
    for sample in reversed(window):
        if sample.score is None or sample.score >= unhealthy:
            break
        run += 1
    best = max(s.score for s in window if s.score is not None)
    if run >= needed and len(window) >= needed:
        return Decision("failing", best, f"{run} consecutive samples below {unhealthy:g}")
    bad = sum(1 for s in window if s.score is not None and s.score < unhealthy)
    if bad:
        return Decision(
            "degraded",
            max(best, unhealthy),
            f"{bad} of the last {len(window)} samples below {unhealthy:g}, {run} in a row (failing at {needed})",
        )
    newest = samples[-1].score
    if newest < 1.0:
        return Decision("degraded", newest, f"score {newest:.2f}: an SLO is breached")
    return Decision("healthy", newest, f"the last {len(window)} samples within the SLOs")
