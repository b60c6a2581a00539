"""extensions/grafana/depmirror.json: every metric a panel queries is one the runner exports, and every
history statistic has a panel (a renamed metric would otherwise leave an empty panel nobody notices)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily

from depmirror.fleet.history_stats import GroupStats, HistoryStats
from depmirror.runner.api.stats import COUNTS, HistoryCollector
from depmirror.runner.metrics import RunnerMetrics

DASHBOARD = Path(__file__).resolve().parents[3] / "extensions" / "grafana" / "depmirror.json"
METRIC = re.compile(r"\b(depmirror_[a-z_]+)")


def _exported() -> set[str]:
    names = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    for family in RunnerMetrics().registry.collect():
        # A labelled series has no sample until first used: the names come from the family's type.
        names |= {family.name + suffix for suffix in suffixes[family.type]}
    collector = HistoryCollector()
    collector.stats = HistoryStats(by="dependency", since=None, until=None, events=0, total=GroupStats(key="*"))
    families: list[GaugeMetricFamily] = list(collector.collect())
    return names | {family.name for family in families}


def test_every_queried_metric_is_exported_and_every_statistic_shown() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        for name in METRIC.findall(target["expr"])
    }
    exported = _exported()
    assert queried - exported == set(), "panels query metrics the runner does not export"
    history = {name for name in exported if name.startswith("depmirror_history_")}
    assert history - queried == set(), "history statistics without a panel"
    assert {f"depmirror_history_{name}" for name, _ in COUNTS} <= queried
