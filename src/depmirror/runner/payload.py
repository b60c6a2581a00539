"""Alertmanager webhook v4 payloads: parse and validate, or say exactly what is wrong (-> 400).

Alertmanager documents the shape at https://prometheus.io/docs/alerting/latest/configuration/#webhook_config.
Anything that is not that shape is refused here, before it can reach the queue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

STATUSES = ("firing", "resolved")
# Alertmanager's max_alerts truncates groups; a sender beyond this is not an Alertmanager we trust.
MAX_ALERTS = 5000
MAX_FINGERPRINT = 128


class PayloadError(ValueError):
    """The request body is not an Alertmanager v4 notification; str(error) is the reason for the 400."""


@dataclass(frozen=True, slots=True)
class Alert:
    status: str
    labels: dict[str, str]
    starts_at: str
    fingerprint: str
    annotations: dict[str, str] = field(default_factory=dict)
    ends_at: str = ""
    generator_url: str = ""


@dataclass(frozen=True, slots=True)
class Notification:
    receiver: str
    status: str
    group_key: str
    alerts: tuple[Alert, ...]
    external_url: str = ""
    truncated_alerts: int = 0


def parse_notification(body: bytes) -> Notification:
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise PayloadError(f"body is not UTF-8: {error.reason} at byte {error.start}") from error
    except json.JSONDecodeError as error:
        raise PayloadError(f"body is not JSON: {error.msg} at line {error.lineno} column {error.colno}") from error
    except (RecursionError, ValueError) as error:  # nesting too deep, integers too long
        raise PayloadError(f"body is not acceptable JSON: {type(error).__name__}") from error
    if not isinstance(data, dict):
        raise PayloadError(f"body must be a JSON object, got {_type(data)}")
    version = data.get("version")
    if version != "4":
        raise PayloadError(f'version must be "4" (Alertmanager webhook v4), got {_short(version)}')
    status = _status(data, "status")
    receiver = _text(data, "receiver")
    group_key = _text(data, "groupKey")
    external_url = _text(data, "externalURL", required=False)
    for key in ("groupLabels", "commonLabels", "commonAnnotations"):
        if key in data:
            _labels(data, key)
    truncated = data.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        raise PayloadError("truncatedAlerts must be a non-negative integer")
    raw_alerts = data.get("alerts")
    if not isinstance(raw_alerts, list) or not raw_alerts:
        raise PayloadError("alerts must be a non-empty list")
    if len(raw_alerts) > MAX_ALERTS:
        raise PayloadError(f"alerts has {len(raw_alerts)} entries, more than {MAX_ALERTS}")
    alerts = tuple(_alert(raw, index) for index, raw in enumerate(raw_alerts))
    return Notification(
        receiver=receiver,
        status=status,
        group_key=group_key,
        alerts=alerts,
        external_url=external_url,
        truncated_alerts=truncated,
    )


def _alert(raw: Any, index: int) -> Alert:
    where = f"alerts[{index}]"
    if not isinstance(raw, dict):
        raise PayloadError(f"{where} must be an object, got {_type(raw)}")
    fingerprint = _text(raw, "fingerprint", where=where)
    if not fingerprint or len(fingerprint) > MAX_FINGERPRINT or not fingerprint.isprintable():
        raise PayloadError(f"{where}.fingerprint must be 1..{MAX_FINGERPRINT} printable characters")
    starts_at = _text(raw, "startsAt", where=where)
    _timestamp(starts_at, f"{where}.startsAt")
    ends_at = _text(raw, "endsAt", where=where, required=False)
    if ends_at:
        _timestamp(ends_at, f"{where}.endsAt")
    return Alert(
        status=_status(raw, "status", where=where),
        labels=_labels(raw, "labels", where=where),
        annotations=_labels(raw, "annotations", where=where, required=False),
        starts_at=starts_at,
        ends_at=ends_at,
        fingerprint=fingerprint,
        generator_url=_text(raw, "generatorURL", where=where, required=False),
    )


def _status(data: dict[str, Any], key: str, where: str = "") -> str:
    value = _text(data, key, where=where)
    if value not in STATUSES:
        raise PayloadError(f"{_at(where, key)} must be firing or resolved, got {_short(value)}")
    return value


def _text(data: dict[str, Any], key: str, *, where: str = "", required: bool = True) -> str:
    if key not in data:
        if required:
            raise PayloadError(f"{_at(where, key)} is missing")
        return ""
    value = data[key]
    if not isinstance(value, str):
        raise PayloadError(f"{_at(where, key)} must be a string, got {_type(value)}")
    _encodable(value, _at(where, key))
    return value


def _labels(data: dict[str, Any], key: str, *, where: str = "", required: bool = True) -> dict[str, str]:
    if key not in data:
        if required:
            raise PayloadError(f"{_at(where, key)} is missing")
        return {}
    value = data[key]
    if not isinstance(value, dict):
        raise PayloadError(f"{_at(where, key)} must be an object of strings, got {_type(value)}")
    for name, item in value.items():
        if not isinstance(item, str):
            raise PayloadError(f"{_at(where, key)}.{_short(name)} must be a string, got {_type(item)}")
        _encodable(name, f"{_at(where, key)} name")
        _encodable(item, f"{_at(where, key)}.{_short(name)}")
    return dict(value)


def _encodable(value: str, what: str) -> None:
    # JSON may carry lone surrogates (\ud800) that no UTF-8 store or log can hold.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise PayloadError(f"{what} holds an invalid Unicode code point") from error


def _timestamp(value: str, what: str) -> None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise PayloadError(f"{what} is not an RFC 3339 time: {_short(value)}") from error
    if parsed.tzinfo is None:
        raise PayloadError(f"{what} has no time zone: {_short(value)}")


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _type(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
