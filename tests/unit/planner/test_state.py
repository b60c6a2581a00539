"""The planner's input files: state and health JSON, with errors that name file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from depmirror.errors import ConfigError
from depmirror.planner.state import HealthSnapshot, InstanceRecord, RfDecision, State, load_health, load_state


def test_state_round_trips() -> None:
    state = State(
        instances=(InstanceRecord("payments", "vm-a1", "primary", "zone-a"),),
        decisions={"payments": RfDecision(2, 10.0, 1, 5.0, 0.25)},
    )
    assert State.from_dict(state.to_dict()) == state


def test_health_file_loads_and_missing_parts_are_unknown(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    path.write_text(json.dumps({"instances": {"payments@vm-a1": 0.9, "payments@vm-b1": None}}), encoding="utf-8")
    health = load_health(path)
    assert health.instance("payments", "vm-a1") == 0.9
    assert health.instance("payments", "vm-b1") is None
    assert health.zones == {} and HealthSnapshot.from_dict(health.to_dict()) == health


@pytest.mark.parametrize(
    ("content", "field", "fix"),
    [
        ({"instances": [{"dependency": "p", "host": "h", "role": "boss"}]}, "instances[0].role", "primary"),
        (
            {"instances": [{"dependency": "", "host": "h", "role": "mirror"}]},
            "instances[0].dependency",
            "a name",
        ),
        ({"decisions": {"p": {"rf": -1}}}, "decisions.p.rf", "an integer >= 0"),
        ({"decisions": {"p": {"rf": 1, "decided_at": "soon"}}}, "decisions.p.decided_at", "a finite number"),
        ({"version": 9}, "version", "use version 1"),
        ([], "(top level)", "JSON object"),
    ],
)
def test_bad_state_names_file_and_field(tmp_path: Path, content: object, field: str, fix: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_state(path)
    assert (caught.value.file, caught.value.field) == (str(path), field)
    assert fix in caught.value.fix


def test_health_score_outside_0_1_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    path.write_text(json.dumps({"zones": {"zone-a": 1.5}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"zones\.zone-a: health score 1.5 is outside 0..1"):
        load_health(path)


def test_not_json_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_state(path)
