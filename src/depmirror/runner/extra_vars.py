"""The extra vars file a playbook run reads (`-e @file`): every string marked unsafe, so ansible-core never
templates alert text.

ansible-core trusts extra vars as templates; alert text in them would run as Jinja (a `lookup('pipe')`
is a shell on the runner host). The file is JSON in which each string is `{"__ansible_unsafe": "..."}`,
the form ansible-core's own JSON decoder reads as an unsafe string. Not YAML's `!unsafe` tag: ansible-core
resolves a tagged scalar's type first, so `!unsafe "0x1F"` arrives as the integer 31 and a timestamp as a
datetime, while the JSON form keeps every string a string, exactly as the alert sent it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

UNSAFE_KEY = "__ansible_unsafe"
# Mapping keys cannot be marked unsafe; they come from the runner, never from an alert.
_TEMPLATE_MARKS = ("{{", "{%", "{#")


def mark_unsafe(value: Any) -> Any:
    """`value` with every string wrapped as ansible-core's unsafe JSON form, tuples as lists."""
    if isinstance(value, str):
        return {UNSAFE_KEY: value}
    if isinstance(value, dict):
        return {_key(key): mark_unsafe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mark_unsafe(item) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return {UNSAFE_KEY: str(value)}


def render_extra_vars(variables: dict[str, Any]) -> str:
    return json.dumps(mark_unsafe(variables), sort_keys=True, ensure_ascii=False)


def write_extra_vars(path: Path, variables: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(render_extra_vars(variables))


def _key(key: Any) -> str:
    text = str(key)
    if any(mark in text for mark in _TEMPLATE_MARKS):
        raise ValueError(f"extra vars key {text[:40]!r} holds template marks: keys must be the runner's own")
    return text
