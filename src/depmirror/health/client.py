"""Range queries over prometheus-api-client, with every failure turned into one error type.

The client's default retries (3, with backoff) would make an unreachable Prometheus cost seconds per
query; a health check must answer `unknown` fast instead, so retries are off.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from urllib3.util.retry import Retry

from depmirror.durations import parse_duration


class PrometheusUnavailable(Exception):
    """Prometheus could not answer: unreachable, timed out, or refused the query."""


@dataclass(frozen=True, slots=True)
class Series:
    labels: Mapping[str, str]
    points: Mapping[float, float]


class PrometheusSource:
    def __init__(self, url: str, token: str | None = None, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        # The library annotates headers as a dict and timeout as an int; it takes None and seconds as floats.
        options: dict[str, Any] = {
            "headers": {"Authorization": f"Bearer {token}"} if token else None,
            "timeout": timeout,
        }
        self._client = PrometheusConnect(url=self.url, retry=Retry(total=0, redirect=0), **options)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusSource:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        """One point per step from start to end (whole seconds: the client rounds them)."""
        try:
            result: Any = self._client.custom_query_range(
                query,
                start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(end, UTC),
                step=f"{step:g}s",
            )
        except (requests.RequestException, PrometheusApiClientException, ValueError, KeyError) as error:
            raise PrometheusUnavailable(f"{self.url}: {_short(error)}") from error
        return [_series(item) for item in result or []]

    def scrape_interval(self, job: str) -> float | None:
        """The scrape interval of `job`'s active targets, as Prometheus reports it; None without targets."""
        try:
            data: Any = self._client.get_targets(state="active", scrape_pool=job)
        except (requests.RequestException, PrometheusApiClientException, ValueError, KeyError) as error:
            raise PrometheusUnavailable(f"{self.url}: {_short(error)}") from error
        for target in data.get("activeTargets", []):
            text = target.get("scrapeInterval")
            if isinstance(text, str):
                with contextlib.suppress(ValueError):
                    return parse_duration(text)
        return None


def _series(item: Mapping[str, Any]) -> Series:
    points: dict[float, float] = {}
    for at, text in item.get("values", []):
        try:
            points[float(at)] = float(text)
        except (TypeError, ValueError):
            points[float(at)] = math.nan
    return Series(labels=dict(item.get("metric", {})), points=points)


def _short(error: Exception) -> str:
    text = str(error)
    if isinstance(error, requests.ConnectionError):
        return "connection refused or host unreachable"
    if isinstance(error, requests.Timeout):
        return "timed out"
    return text if len(text) <= 200 else text[:200] + "..."
