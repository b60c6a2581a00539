"""What runs now, earlier RF decisions and health: the planner's inputs, as plain values.

Persistence (SQLite, PostgreSQL) lives elsewhere; this module only defines the shapes and their JSON form
(`to_dict`/`from_dict`), which the CLI also reads from `--state FILE.json` and `--health FILE.json`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depmirror.errors import ConfigError
from depmirror.graph.model import Role

STATE_VERSION = 1
ROLES: tuple[Role, ...] = ("primary", "mirror", "standby")


def instance_key(dependency: str, host: str) -> str:
    """The key of one instance in health data and state: `dependency@host`."""
    return f"{dependency}@{host}"


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """One instance that runs now (or ran when the state was last written)."""

    dependency: str
    host: str
    role: Role
    zone: str | None = None

    @property
    def key(self) -> str:
        return instance_key(self.dependency, self.host)


@dataclass(frozen=True, slots=True)
class RfDecision:
    """The last replication decision for a dependency, kept so that the next one can apply hysteresis.

    `pending_rf`/`pending_since`: a lower RF has been wanted since `pending_since` (the highest such
    wish is kept); it is applied only once the stabilisation window has passed.
    """

    rf: int
    decided_at: float
    pending_rf: int | None = None
    pending_since: float | None = None
    system_health_impact: float = 0.0


@dataclass(frozen=True, slots=True)
class State:
    """What runs now and the last RF decisions; `zonal_shifts`: zone -> expiry (epoch seconds).

    A zonal shift is read by the planner (docs/graph.md, "Zones") but owned by whoever records it: the
    plan's next state does not carry it, and a shift whose expiry is not after `now` is ignored.
    """

    instances: tuple[InstanceRecord, ...] = ()
    decisions: Mapping[str, RfDecision] = field(default_factory=dict)
    zonal_shifts: Mapping[str, float] = field(default_factory=dict)

    def instances_by_dependency(self) -> dict[str, list[InstanceRecord]]:
        grouped: dict[str, list[InstanceRecord]] = {}
        for record in self.instances:
            grouped.setdefault(record.dependency, []).append(record)
        return grouped

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "version": STATE_VERSION,
            "instances": [
                {"dependency": r.dependency, "host": r.host, "zone": r.zone, "role": r.role} for r in self.instances
            ],
            "decisions": {
                name: {
                    "rf": d.rf,
                    "decided_at": d.decided_at,
                    "pending_rf": d.pending_rf,
                    "pending_since": d.pending_since,
                    "system_health_impact": d.system_health_impact,
                }
                for name, d in sorted(self.decisions.items())
            },
        }
        if self.zonal_shifts:  # absent when empty: a plan's next state never carries one
            data["zonal_shifts"] = dict(sorted(self.zonal_shifts.items()))
        return data

    @staticmethod
    def from_dict(data: Any, source: str = "<state>") -> State:
        reader = _Reader(source)
        top = reader.mapping(data, "")
        version = top.get("version", STATE_VERSION)
        if version != STATE_VERSION:
            raise ConfigError(source, "version", f"unsupported state version {version!r}", "use version 1")
        instances = tuple(
            _instance(reader, item, f"instances[{i}]")
            for i, item in enumerate(reader.sequence(top.get("instances", []), "instances"))
        )
        decisions_in = reader.mapping(top.get("decisions", {}), "decisions")
        decisions = {str(name): _decision(reader, value, f"decisions.{name}") for name, value in decisions_in.items()}
        shifts_in = reader.mapping(top.get("zonal_shifts", {}), "zonal_shifts")
        shifts = {
            reader.text(zone, "zonal_shifts"): reader.number(expiry, f"zonal_shifts.{zone}")
            for zone, expiry in shifts_in.items()
        }
        return State(instances=instances, decisions=decisions, zonal_shifts=shifts)


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """Health scores 0..1 (None: unknown) per instance (`dep@host`), per VM and per zone.

    Anything missing is unknown. Unknown is assumed serving and never causes a destructive action by
    itself; with no snapshot at all, everything is unknown.
    """

    instances: Mapping[str, float | None] = field(default_factory=dict)
    vms: Mapping[str, float | None] = field(default_factory=dict)
    zones: Mapping[str, float | None] = field(default_factory=dict)

    def instance(self, dependency: str, host: str) -> float | None:
        return self.instances.get(instance_key(dependency, host))

    def to_dict(self) -> dict[str, Any]:
        return {"instances": dict(self.instances), "vms": dict(self.vms), "zones": dict(self.zones)}

    @staticmethod
    def from_dict(data: Any, source: str = "<health>") -> HealthSnapshot:
        reader = _Reader(source)
        top = reader.mapping(data, "")
        parts = {
            part: {str(k): reader.score(v, f"{part}.{k}") for k, v in reader.mapping(top.get(part, {}), part).items()}
            for part in ("instances", "vms", "zones")
        }
        return HealthSnapshot(instances=parts["instances"], vms=parts["vms"], zones=parts["zones"])


def load_state(path: str | Path) -> State:
    return State.from_dict(_read_json(path), str(path))


def load_health(path: str | Path) -> HealthSnapshot:
    return HealthSnapshot.from_dict(_read_json(path), str(path))


def _read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(
            str(path), "", f"cannot read the file: {error.strerror}", "give an existing JSON file"
        ) from error
    except json.JSONDecodeError as error:
        raise ConfigError(
            str(path),
            "",
            f"not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}",
            "fix the JSON",
        ) from error


def _instance(reader: _Reader, item: Any, where: str) -> InstanceRecord:
    value = reader.mapping(item, where)
    role = value.get("role")
    if role not in ROLES:
        raise ConfigError(reader.source, f"{where}.role", f"unknown role {role!r}", f"one of {', '.join(ROLES)}")
    zone = value.get("zone")
    return InstanceRecord(
        dependency=reader.text(value.get("dependency"), f"{where}.dependency"),
        host=reader.text(value.get("host"), f"{where}.host"),
        role=role,
        zone=None if zone is None else reader.text(zone, f"{where}.zone"),
    )


def _decision(reader: _Reader, item: Any, where: str) -> RfDecision:
    value = reader.mapping(item, where)
    rf = value.get("rf")
    if not isinstance(rf, int) or isinstance(rf, bool) or rf < 0:
        raise ConfigError(reader.source, f"{where}.rf", f"{rf!r} is not a replication factor", "an integer >= 0")
    pending_rf = value.get("pending_rf")
    if pending_rf is not None and (not isinstance(pending_rf, int) or isinstance(pending_rf, bool)):
        raise ConfigError(
            reader.source, f"{where}.pending_rf", f"{pending_rf!r} is not an integer", "an integer or null"
        )
    pending_since = value.get("pending_since")
    return RfDecision(
        rf=rf,
        decided_at=reader.number(value.get("decided_at", 0.0), f"{where}.decided_at"),
        pending_rf=pending_rf,
        pending_since=None if pending_since is None else reader.number(pending_since, f"{where}.pending_since"),
        system_health_impact=reader.number(value.get("system_health_impact", 0.0), f"{where}.system_health_impact"),
    )


@dataclass(frozen=True, slots=True)
class _Reader:
    """Type checks that name the file and field, for the small JSON files the CLI accepts."""

    source: str

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ConfigError(self.source, where or "(top level)", "expected an object", "write a JSON object {...}")
        return value

    def sequence(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise ConfigError(self.source, where, "expected a list", "write a JSON array [...]")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            raise ConfigError(self.source, where, f"expected a non-empty string, got {value!r}", "a name")
        return value

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(self.source, where, f"expected a number, got {value!r}", "a finite number")
        return float(value)

    def score(self, value: Any, where: str) -> float | None:
        if value is None:
            return None
        score = self.number(value, where)
        if not 0.0 <= score <= 1.0:
            raise ConfigError(self.source, where, f"health score {score} is outside 0..1", "a number 0..1 or null")
        return score
