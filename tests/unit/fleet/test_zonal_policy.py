"""`policy.zonal_shift` in the graph: defaults, and one clear error (file, field, fix) for each bad value."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.graph_data import base_graph, build

from depmirror.errors import ConfigError
from depmirror.graph.model import ZonalShiftPolicy


def _policy(**values: Any) -> ZonalShiftPolicy:
    data = base_graph()
    data["policy"] = {"zonal_shift": values}
    return build(data).policy.zonal_shift


def test_defaults() -> None:
    policy = build(base_graph()).policy.zonal_shift
    assert policy == ZonalShiftPolicy()
    assert (policy.mode, policy.max_concurrent, policy.expires_s, policy.hold_s) == ("act", 1, 3600.0, 300.0)
    assert (policy.alert_fraction, policy.alert_min_vms, policy.samples) == (0.5, 2, 3)


def test_every_key_is_read() -> None:
    policy = _policy(
        mode="shadow", max_concurrent=2, expires="72h", hold="0s", alert_fraction=0.3, alert_min_vms=1, samples=5
    )
    assert policy.expires_s == 259200.0 and policy.hold_s == 0.0 and policy.max_concurrent == 2
    assert _policy(expires="4320m").expires_s == _policy(expires="259200s").expires_s == 259200.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"expires": "73h"}, "policy.zonal_shift.expires: '73h' is not allowed (fix: a duration of at most 72h"),
        ({"expires": "4321m"}, "policy.zonal_shift.expires: '4321m' is not allowed"),
        ({"expires": "259201s"}, "policy.zonal_shift.expires: '259201s' is not allowed"),
        ({"expires": "0h"}, "policy.zonal_shift.expires: '0h' is not allowed"),
        ({"expires": "{{ 1 }}h"}, "policy.zonal_shift.expires"),
        ({"mode": "yolo"}, "policy.zonal_shift.mode: 'yolo' is not allowed (fix: one of: act, shadow, off)"),
        ({"max_concurrent": 0}, "policy.zonal_shift.max_concurrent: 0 is out of range"),
        ({"alert_fraction": 1.5}, "policy.zonal_shift.alert_fraction: 1.5 is out of range"),
        ({"alert_fraction": float("nan")}, "policy.zonal_shift.alert_fraction: nan is not a finite number"),
        ({"samples": 2.0}, "policy.zonal_shift.samples: expected an integer"),
        ({"hold": "soon"}, "policy.zonal_shift.hold: 'soon' is not allowed (fix: a duration such as"),
        ({"surprise": 1}, "policy.zonal_shift.surprise: unknown field"),
    ],
)
def test_bad_values_name_the_field_and_the_fix(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        _policy(**values)
    assert str(error.value).startswith("graph.yml: ") and message in str(error.value)
