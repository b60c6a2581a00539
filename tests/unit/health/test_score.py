from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depmirror.graph.model import Slo
from depmirror.health.score import Sample, decide, score, scored

SLO = Slo(latency_ms=200, error_ratio=0.01)


def samples(*scores: float | None) -> list[Sample]:
    return [Sample(at=float(i), up=None if s is None else 1.0, score=s) for i, s in enumerate(scores)]


def test_a_serving_instance_within_its_slos_scores_one() -> None:
    assert score(1.0, 0.05, 0.0, SLO) == 1.0


def test_a_down_instance_scores_zero_whatever_its_latency() -> None:
    assert score(0.0, 0.001, 0.0, SLO) == 0.0


def test_latency_falls_linearly_to_zero_at_twice_the_slo() -> None:
    assert score(1.0, 0.3, None, SLO) == pytest.approx(0.5)
    assert score(1.0, 0.4, None, SLO) == 0.0
    assert score(1.0, 5.0, None, SLO) == 0.0


def test_the_worst_part_decides() -> None:
    assert score(1.0, 0.1, 0.015, SLO) == pytest.approx(0.5)


def test_missing_or_nan_up_is_unknown_but_nan_error_ratio_is_ignored() -> None:
    assert score(None, 0.1, 0.0, SLO) is None
    assert score(math.nan, 0.1, 0.0, SLO) is None
    assert score(1.0, 0.1, math.nan, SLO) == 1.0


def test_a_stale_sample_has_no_score() -> None:
    assert scored(Sample(at=0.0, up=1.0, latency=0.01, stale=True), SLO).score is None


@given(
    up=st.one_of(st.none(), st.floats(allow_nan=True)),
    latency=st.one_of(st.none(), st.floats(allow_nan=True)),
    errors=st.one_of(st.none(), st.floats(allow_nan=True)),
)
def test_the_score_is_unknown_or_within_zero_and_one(
    up: float | None, latency: float | None, errors: float | None
) -> None:
    value = score(up, latency, errors, SLO)
    assert value is None or 0.0 <= value <= 1.0


def test_failing_needs_the_configured_number_of_bad_samples_in_a_row() -> None:
    assert decide(samples(1.0, 0.0, 0.0), needed=3, unhealthy=0.5).state == "degraded"
    failing = decide(samples(0.0, 0.0, 0.0), needed=3, unhealthy=0.5)
    assert failing.state == "failing" and failing.score == 0.0
    assert decide(samples(1.0, 0.0, 0.0, 0.0), needed=3, unhealthy=0.5).state == "failing"


def test_one_bad_sample_never_reads_as_unhealthy_to_the_planner() -> None:
    degraded = decide(samples(1.0, 1.0, 0.0), needed=3, unhealthy=0.5)
    assert degraded.state == "degraded"
    assert degraded.score is not None and degraded.score >= 0.5


def test_an_unknown_sample_breaks_the_run_of_bad_samples() -> None:
    assert decide(samples(0.0, None, 0.0), needed=3, unhealthy=0.5).state == "degraded"


def test_no_data_on_the_newest_sample_is_unknown() -> None:
    for window in (samples(), samples(0.0, 0.0, None), samples(1.0, 1.0, None)):
        decision = decide(window, needed=3, unhealthy=0.5)
        assert decision.state == "unknown" and decision.score is None


def test_fewer_samples_than_needed_are_never_failing() -> None:
    assert decide(samples(0.0, 0.0), needed=3, unhealthy=0.5).state == "degraded"


def test_a_breached_slo_below_the_unhealthy_line_is_degraded_then_healthy_again() -> None:
    assert decide(samples(0.8, 0.8, 0.8), needed=3, unhealthy=0.5).state == "degraded"
    assert decide(samples(1.0, 1.0, 1.0), needed=3, unhealthy=0.5).state == "healthy"
