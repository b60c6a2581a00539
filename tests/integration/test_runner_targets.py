"""A real Prometheus discovers its probe targets from a real `depmirror serve` (GET /api/v1/targets through
`http_sd_configs` with a bearer token): every instance of the applied plan with its zone and role, a
switched-over dependency probed with its new primary as `primary`, and a mirror that an adjust adds
discovered without a file being copied or Prometheus reloaded."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.fakes.webhook import free_port
from tests.integration.health_services import PROMETHEUS, Processes, processes, start_prometheus, wait_until

from depmirror.fleet.applied import record_applied_plan
from depmirror.graph.load import load_graph
from depmirror.health.queries import BLACKBOX_JOB
from depmirror.health.rules import scrape_configs
from depmirror.planner.plan import compute_plan
from depmirror.store import open_store

ROOT = Path(__file__).resolve().parents[2]
GRAPH = ROOT / "inventories" / "example" / "graph.yml"
READ_TOKEN = "targets-reader-0123456789"
pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(not os.path.exists(PROMETHEUS), reason="needs Debian's prometheus"),
]


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _serve(procs: Processes, workdir: Path, *, graph: bool = True) -> str:
    port = free_port()
    config: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": port},
        "auth": {
            "type": "bearer",
            "token_env": "WEBHOOK_TOKEN",
            "api_tokens": [{"name": "prometheus", "token_env": "READ_TOKEN", "scopes": ["read"]}],
        },
        "store": "history.db",
        "mode": "shadow",
        "policy": {"on_unknown_health": "delegate"},
    }
    config |= {"graph": str(GRAPH)} if graph else {"dependencies": {"payments-api": ["vm-a1"]}}
    (workdir / "runner.yml").write_text(yaml.safe_dump(config))
    procs.start("runner", [sys.executable, "-m", "depmirror.cli", "serve", "--config", str(workdir / "runner.yml")])
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _get(f"{url}/healthz")[0] == 200, 30, "the runner")
    return url


def _discovered(prometheus: str) -> dict[str, dict[str, str]]:
    _, answer = _get(f"{prometheus}/api/v1/targets?state=active")
    targets = answer["data"]["activeTargets"]
    return {t["labels"]["instance"]: t["labels"] for t in targets if t["scrapePool"] == BLACKBOX_JOB}


@pytest.fixture(autouse=True)
def _tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_TOKEN", "webhook-token-0123456789")
    monkeypatch.setenv("READ_TOKEN", READ_TOKEN)


def test_prometheus_discovers_what_runs_now_from_the_runner(tmp_path: Path) -> None:
    graph = load_graph(GRAPH)
    plan = compute_plan(graph, None, None, 0.0).to_dict()
    store_url = str(tmp_path / "history.db")
    record_applied_plan(store_url, plan)
    payments = next(d for d in plan["dependencies"] if d["name"] == "payments-api")
    old_primary = payments["primary"]["host"]
    new_primary = next(i["host"] for i in payments["instances"] if i["host"] != old_primary)
    with open_store(store_url) as store:
        store.set_primary("payments-api", new_primary)  # what a switchover records

    with processes(tmp_path) as procs:
        runner = _serve(procs, tmp_path)
        assert _get(f"{runner}/api/v1/targets")[0] == 401
        assert _get(f"{runner}/api/v1/targets", "not-a-token")[0] == 401
        # The probe job as the monitoring role writes it with a runner to discover from (docs/health.md).
        discovery = {"url": f"{runner}/api/v1/targets", "authorization": {"type": "Bearer", "credentials": READ_TOKEN}}
        jobs = scrape_configs(f"127.0.0.1:{free_port()}", [], 1.0, runner_targets=discovery)
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({"scrape_configs": jobs}))
        _, prometheus = start_prometheus(procs, tmp_path / "prometheus.yml")

        expected = {f"{d['name']}@{i['host']}": i["role"] for d in plan["dependencies"] for i in d["instances"]}
        seen = wait_until(lambda: (t := _discovered(prometheus)) and len(t) == len(expected) and t, 20, "discovery")
        standby = "standby" if payments["mode"] == "active-passive" else "mirror"
        expected |= {f"payments-api@{old_primary}": standby, f"payments-api@{new_primary}": "primary"}
        assert {key: labels["role"] for key, labels in seen.items()} == expected
        for labels in seen.values():
            assert labels["zone"] == graph.vms[labels["host"]].zone
            assert labels["dependency"] == labels["instance"].split("@")[0]

        # An adjust (here: the record a reconciliation writes) adds a mirror on a VM payments-api did not use.
        spare = next(vm for vm in graph.vms if vm not in {i["host"] for i in payments["instances"]})
        grown = json.loads(json.dumps(plan))
        item = next(d for d in grown["dependencies"] if d["name"] == "payments-api")
        item["instances"].append(item["instances"][-1] | {"host": spare, "role": standby, "status": "new"})
        record_applied_plan(store_url, grown)
        added = f"payments-api@{spare}"
        seen = wait_until(lambda: (t := _discovered(prometheus)) and added in t and t, 20, "the new mirror")
        assert seen[added]["role"] == standby and seen[added]["zone"] == graph.vms[spare].zone


def test_a_runner_without_a_graph_says_why_it_has_no_targets(tmp_path: Path) -> None:
    with processes(tmp_path) as procs:
        runner = _serve(procs, tmp_path, graph=False)
        status, answer = _get(f"{runner}/api/v1/targets", READ_TOKEN)
        assert status == 409 and answer["field"] == "graph" and "set graph:" in answer["error"]
