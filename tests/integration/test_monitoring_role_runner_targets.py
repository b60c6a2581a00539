"""The `monitoring` role with `monitoring_runner_targets_url`: the prometheus.yml it writes (checked by
promtool in the role) makes a real Prometheus discover its probe targets from a real `depmirror serve`,
with the read token taken from a file and never written into prometheus.yml; wrong or hostile values stop
the role before anything is written, each with a message naming the variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.health_services import PROMETHEUS, Processes, free_port, processes, start_prometheus, wait_until

from depmirror.fleet.applied import record_applied_plan
from depmirror.graph.load import load_graph
from depmirror.health.queries import BLACKBOX_JOB
from depmirror.planner.plan import compute_plan

ROOT = Path(__file__).resolve().parents[2]
GRAPH = ROOT / "inventories" / "example" / "graph.yml"
READ_TOKEN = "prometheus-read-token-0123456789abcdef"
pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(not os.path.exists(PROMETHEUS), reason="needs Debian's prometheus and promtool"),
]
# Query characters that break YAML when pasted into prometheus.yml unquoted (the role renders with
# to_nice_yaml, so they must come back as they went in, and promtool must accept the result).
ODD_URL = "http://127.0.0.1:9/api/v1/targets?a='\"{x}[y]:&*!|>,%25-\\"
# Each case runs the role inside a block whose rescue records the failed task and its message.
REFUSED = {
    "token_without_url": {"monitoring_runner_targets_token_file": "/etc/prometheus/read.token"},
    "plain_http_off_loopback": {"monitoring_runner_targets_url": "http://198.18.0.10:9095/api/v1/targets"},
    "newline_in_url": {"monitoring_runner_targets_url": "http://127.0.0.1:9/x\nscrape_configs: []"},
    "credentials_in_url": {"monitoring_runner_targets_url": "https://reader:s3cret@runner.example/api/v1/targets"},
    "missing_token_file": {
        "monitoring_runner_targets_url": "http://127.0.0.1:9/api/v1/targets",
        "monitoring_runner_targets_token_file": "/nonexistent/depmirror-read.token",
    },
}
EXPECTED_MESSAGE = {
    "token_without_url": "monitoring_runner_targets_url is empty",
    "plain_http_off_loopback": "clear text",
    "newline_in_url": "whitespace or control characters",
    "credentials_in_url": "carries credentials",
    "missing_token_file": "(monitoring_runner_targets_token_file) is missing, empty or not a regular file",
}


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def _serve(procs: Processes, workdir: Path, token_file: Path) -> str:
    """`depmirror serve` with the graph, reading the same token file as Prometheus (one host, one file)."""
    port = free_port()
    # The webhook's token must differ from every API token: it has its own file.
    (workdir / "webhook.token").write_text("webhook-token-0123456789abcdef\n")
    config = {
        "listen": {"host": "127.0.0.1", "port": port},
        "auth": {
            "type": "bearer",
            "token_file": str(workdir / "webhook.token"),
            "api_tokens": [{"name": "prometheus", "token_file": str(token_file), "scopes": ["read"]}],
        },
        "store": "history.db",
        "mode": "shadow",
        "graph": str(GRAPH),
        "policy": {"on_unknown_health": "delegate"},
    }
    (workdir / "runner.yml").write_text(yaml.safe_dump(config))
    procs.start("runner", [sys.executable, "-m", "depmirror.cli", "serve", "--config", str(workdir / "runner.yml")])
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _get(f"{url}/healthz")[0] == 200, 30, "the runner")
    return url


def _play(name: str, variables: dict[str, Any], record: Path | None = None) -> dict[str, Any]:
    include = {
        "name": "Run the monitoring role",
        "ansible.builtin.include_role": {"name": "depmirror.mirroring.monitoring"},
    }
    tasks: list[dict[str, Any]] = [include]
    if record is not None:
        rescue = {
            "name": "Record why the role stopped",
            "ansible.builtin.copy": {
                "dest": str(record),
                "content": (
                    "{{ {'task': ansible_failed_task.name, 'msg': ansible_failed_result.msg, 'items':"
                    " ansible_failed_result.results | default([]) | map(attribute='msg', default='') | list}"
                    " | to_json }}"
                ),
                "mode": "0644",
            },
        }
        tasks = [{"name": "Run the monitoring role, expecting a refusal", "block": [include], "rescue": [rescue]}]
    return {
        "name": name,
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars_files": ["vars.json"],
        "vars": variables,
        "tasks": tasks,
    }


def _run(workdir: Path, common: dict[str, Any], plays: list[dict[str, Any]]) -> str:
    (workdir / "play.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    (workdir / "vars.json").write_text(json.dumps(common))
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
    }
    result = subprocess.run(
        [str(bin_dir / "ansible-playbook"), "-i", "localhost,", "play.yml"],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout


def _discovered(prometheus: str) -> dict[str, dict[str, str]]:
    _, answer = _get(f"{prometheus}/api/v1/targets?state=active")
    targets = answer["data"]["activeTargets"]
    return {t["labels"]["instance"]: t["labels"] for t in targets if t["scrapePool"] == BLACKBOX_JOB}


def test_the_role_points_prometheus_at_the_runner_and_refuses_bad_values(tmp_path: Path) -> None:
    graph = load_graph(GRAPH)
    plan = compute_plan(graph, None, None, 0.0).to_dict()
    record_applied_plan(str(tmp_path / "history.db"), plan)
    token_file = tmp_path / "read.token"
    token_file.write_text(READ_TOKEN + "\n")
    token_file.chmod(0o600)
    ca_file = tmp_path / "ca.pem"  # promtool does not parse it, the role checks that it exists
    ca_file.write_text("-----BEGIN CERTIFICATE-----\n")
    common = {"monitoring_graph": str(GRAPH), "monitoring_blackbox_address": f"127.0.0.1:{free_port()}"}
    with processes(tmp_path) as procs:
        runner = _serve(procs, tmp_path, token_file)
        runner_url = f"{runner}/api/v1/targets"
        discover = {
            "monitoring_config_dir": str(tmp_path / "runner-sd"),
            "monitoring_scrape_interval": "1s",
            "monitoring_runner_targets_url": runner_url,
            "monitoring_runner_targets_token_file": str(token_file),
        }
        plays = [
            _play("Discover the probe targets from the runner", discover),
            _play("Discover them again, unchanged", discover),
            _play(
                "Discover over https with a private CA",
                {
                    "monitoring_config_dir": str(tmp_path / "https-ca"),
                    "monitoring_runner_targets_url": "https://runner.example:9095/api/v1/targets",
                    "monitoring_runner_targets_token_file": str(token_file),
                    "monitoring_runner_targets_ca_file": str(ca_file),
                },
            ),
            _play(
                "Render a URL full of YAML syntax",
                {
                    "monitoring_config_dir": str(tmp_path / "odd-url"),
                    "monitoring_runner_targets_url": ODD_URL,
                    "monitoring_runner_targets_token_file": str(token_file),
                },
            ),
            *(
                _play(
                    f"Refuse {case}",
                    {"monitoring_config_dir": str(tmp_path / case)} | values,
                    record=tmp_path / f"{case}.json",
                )
                for case, values in REFUSED.items()
            ),
        ]
        output = _run(tmp_path, common, plays)
        again = next(play for play in output.split("\nPLAY [") if play.startswith("Discover them again"))
        assert "changed: [localhost]" not in again, "the role is not idempotent with a runner URL"

        written = (tmp_path / "runner-sd" / "prometheus.yml").read_text()
        assert READ_TOKEN not in written, "the token itself was written into prometheus.yml"
        (probe,) = [job for job in yaml.safe_load(written)["scrape_configs"] if job["job_name"] == BLACKBOX_JOB]
        assert "file_sd_configs" not in probe
        assert probe["http_sd_configs"] == [
            {
                "url": runner_url,
                "refresh_interval": "1s",
                "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
            }
        ]
        assert (tmp_path / "runner-sd" / "targets" / "depmirror.json").exists(), "the targets file is still written"

        _, prometheus = start_prometheus(procs, tmp_path / "runner-sd" / "prometheus.yml")
        expected = {f"{d['name']}@{i['host']}": i["role"] for d in plan["dependencies"] for i in d["instances"]}
        seen = wait_until(lambda: (t := _discovered(prometheus)) and len(t) == len(expected) and t, 20, "discovery")
        assert {key: labels["role"] for key, labels in seen.items()} == expected
        assert all(labels["zone"] == graph.vms[labels["host"]].zone for labels in seen.values())

    https = yaml.safe_load((tmp_path / "https-ca" / "prometheus.yml").read_text())
    (https_probe,) = [job for job in https["scrape_configs"] if job["job_name"] == BLACKBOX_JOB]
    assert https_probe["http_sd_configs"][0]["tls_config"] == {"ca_file": str(ca_file)}

    odd = yaml.safe_load((tmp_path / "odd-url" / "prometheus.yml").read_text())
    (odd_probe,) = [job for job in odd["scrape_configs"] if job["job_name"] == BLACKBOX_JOB]
    assert odd_probe["http_sd_configs"][0]["url"] == ODD_URL

    for case in REFUSED:
        record = tmp_path / f"{case}.json"
        assert record.exists(), f"{case}: the role did not refuse"
        failure = json.loads(record.read_text())
        # A looped check fails with "One or more items failed" and the message per item.
        assert any(EXPECTED_MESSAGE[case] in msg for msg in [failure["msg"], *failure["items"]]), (case, failure)
        assert not (tmp_path / case / "prometheus.yml").exists(), f"{case}: a prometheus.yml was written"
