"""The fleet to drive: the same `*.depmirror.yml` file the inventory plugin reads, with the same options.

One file serves both frontends: `graph` and `state_store` relative to the file, `prometheus_url`,
`prometheus_token` and `prometheus_timeout`, with the plugin's environment fallbacks (`DEPMIRROR_STORE`,
`DEPMIRROR_PROMETHEUS_URL`, `DEPMIRROR_PROMETHEUS_TOKEN`). Ansible-only keys (`compose`, `keyed_groups`,
`cache*`, ...) are ignored here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from depmirror.errors import ConfigError

PLUGIN_NAMES = ("depmirror.mirroring.graph", "graph")


@dataclass(frozen=True, slots=True)
class FleetSource:
    path: Path
    graph: Path
    store: str | None
    prometheus_url: str | None = None
    prometheus_token: str | None = field(default=None, repr=False)
    prometheus_timeout: float = 5.0


def read_source(path: str | Path, environ: Mapping[str, str] | None = None) -> FleetSource:
    source = Path(path)
    env = os.environ if environ is None else environ
    try:
        data: Any = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(str(source), "", f"cannot be read: {error.strerror}", "pass an existing file") from None
    except yaml.YAMLError as error:
        raise ConfigError(str(source), "", f"not valid YAML: {error}", "fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(str(source), "", "is not a mapping", "write it as the inventory plugin's file")
    if data.get("plugin") not in PLUGIN_NAMES:
        raise ConfigError(str(source), "plugin", f"is {data.get('plugin')!r}", "set plugin: depmirror.mirroring.graph")
    graph = data.get("graph")
    if not isinstance(graph, str) or not graph:
        raise ConfigError(str(source), "graph", "is missing or not a path", "name the graph file")
    base = source.resolve().parent
    store = _text(source, data, "state_store") or env.get("DEPMIRROR_STORE") or None
    if store and "://" not in store:
        store = str(base / store)
    timeout = data.get("prometheus_timeout", 5.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 300:
        raise ConfigError(str(source), "prometheus_timeout", f"is {timeout!r}", "seconds, above 0 and at most 300")
    return FleetSource(
        path=source,
        graph=base / graph,
        store=store,
        prometheus_url=_text(source, data, "prometheus_url") or env.get("DEPMIRROR_PROMETHEUS_URL") or None,
        prometheus_token=_text(source, data, "prometheus_token") or env.get("DEPMIRROR_PROMETHEUS_TOKEN") or None,
        prometheus_timeout=float(timeout),
    )


def _text(source: Path, data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(str(source), key, f"is a {type(value).__name__}, not a string", "write it as text")
    return value
