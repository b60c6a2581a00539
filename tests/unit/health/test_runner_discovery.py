"""The probe job's `http_sd_configs` entry for the runner's GET /api/v1/targets: what reaches prometheus.yml,
and every URL or path that must not (the token in clear text, credentials in the file, a broken URL)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from depmirror.graph.load import load_graph
from depmirror.health.queries import BLACKBOX_JOB
from depmirror.health.rules import monitoring_config
from depmirror.health.runner_discovery import runner_targets_sd

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "inventories" / "example" / "graph.yml"
TOKEN_FILE = "/etc/prometheus/depmirror-read.token"
INSTANCES = [{"dependency": "ledger", "host": "vm-a1", "role": "primary"}]


def probe_job(runner_targets: dict[str, object] | None) -> dict[str, object]:
    config = monitoring_config(
        load_graph(EXAMPLE), INSTANCES, "2s", "127.0.0.1:9115", "/srv/t.json", runner_targets=runner_targets
    )
    return next(job for job in config["scrape_configs"] if job["job_name"] == BLACKBOX_JOB)


def test_without_a_runner_the_probe_job_reads_the_targets_file() -> None:
    job = probe_job(None)
    assert job["file_sd_configs"] == [{"files": ["/srv/t.json"], "refresh_interval": "2s"}]
    assert "http_sd_configs" not in job


def test_with_a_runner_the_probe_job_discovers_from_it_with_the_token_file_and_ca() -> None:
    url = "https://runner.example:9095/api/v1/targets"
    job = probe_job(runner_targets_sd(url, token_file=TOKEN_FILE, ca_file="/etc/prometheus/ca.pem"))
    assert "file_sd_configs" not in job
    assert job["http_sd_configs"] == [
        {
            "url": url,
            "refresh_interval": "2s",
            "authorization": {"type": "Bearer", "credentials_file": TOKEN_FILE},
            "tls_config": {"ca_file": "/etc/prometheus/ca.pem"},
        }
    ]
    # The exporter still probes what was discovered.
    assert {"target_label": "__address__", "replacement": "127.0.0.1:9115"} in job["relabel_configs"]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9095/api/v1/targets", "http://localhost:9095/x", "http://[::1]:9095/api/v1/targets"]
)
def test_plain_http_on_loopback_needs_neither_tls_nor_a_token(url: str) -> None:
    assert runner_targets_sd(url) == {"url": url}


def test_plain_http_off_loopback_is_accepted_only_when_asked_for() -> None:
    url = "http://198.18.0.10:9095/api/v1/targets"
    with pytest.raises(ValueError, match=r"clear text.*use https.*runner_targets_allow_http"):
        runner_targets_sd(url, token_file=TOKEN_FILE)
    assert runner_targets_sd(url, token_file=TOKEN_FILE, allow_http=True)["url"] == url


def test_a_yaml_breaking_query_survives_the_round_trip_through_yaml() -> None:
    url = "https://runner.example/api/v1/targets?a='\"{x}[y]:&*!|>,%25-\\"
    entry = runner_targets_sd(url, token_file=TOKEN_FILE)
    assert yaml.safe_load(yaml.safe_dump(entry))["url"] == url


@pytest.mark.parametrize(
    ("url", "kwargs", "message"),
    [
        ("", {}, "runner_targets_url must be a non-empty string"),
        (42, {}, "runner_targets_url must be a non-empty string"),
        ("https://runner.example/\nscrape_configs: []", {}, "whitespace or control characters"),
        ("https://runner.example/a\tb", {}, "whitespace or control characters"),
        ("https://runner.example/a b", {}, "whitespace or control characters"),
        ("https://runner.example/" + "a" * 3000, {}, "over 2048 characters"),
        ("ftp://runner.example/api/v1/targets", {}, "not an http\\(s\\) URL"),
        ("runner.example:9095/api/v1/targets", {}, "not an http\\(s\\) URL"),
        ("https:///api/v1/targets", {}, "not an http\\(s\\) URL"),
        ("https://runner.example:99999/", {}, "port that is not a number"),
        ("https://runner.example:http/", {}, "port that is not a number"),
        ('https://run"ner/', {}, "neither a DNS name nor an IP address"),
        ("https://reader:s3cret@runner.example/", {}, "carries credentials"),
        ("https://runner.example/api/v1/targets#x", {}, "#fragment"),
        ("https://runner.example/", {}, "runner_targets_token_file is empty but 'runner.example' is not loopback"),
        ("http://127.0.0.1:9095/", {"ca_file": "/ca.pem"}, "runner_targets_ca_file is set but .* is not https"),
        ("https://runner.example/", {"token_file": "token"}, "runner_targets_token_file must be an absolute path"),
        ("https://runner.example/", {"token_file": "/etc/"}, "does not name a file"),
        ("https://runner.example/", {"token_file": "/etc/t\nx: 1"}, "has control characters"),
        ("https://127.0.0.1/", {"ca_file": "ca.pem"}, "runner_targets_ca_file must be an absolute path"),
    ],
)
def test_wrong_urls_and_paths_are_refused_with_the_field_and_the_fix(
    url: str, kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        runner_targets_sd(url, **kwargs)
