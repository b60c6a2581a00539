"""rollback_controller.yml (the EDA controller's variant) in the real ansible-rulebook: an alert posted to the
collection's source launches the rollback job template once, with checked values only, on a stand-in
controller that answers the calls ansible-rulebook makes (config, unified job template lookup, launch, job
polling) in the shapes AWX's API documents (/api/v2/config/, /api/v2/unified_job_templates/,
/api/v2/job_templates/N/launch/, /api/v2/jobs/?id__in=)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from tests.fakes.hostile import PAYLOADS, Canaries
from tests.fakes.webhook import alert, free_port, notification
from tests.integration.ansible_run import BIN, ROOT

RULEBOOK = ROOT / "extensions" / "eda" / "rulebooks" / "rollback_controller.yml"
GRAPH = ROOT / "inventories" / "example" / "graph.yml"
TOKEN = "am-to-rulebook-token-0123456789"
CONTROLLER_TOKEN = "controller-token-0123456789"
TEMPLATE = "depmirror rollback"
pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(not (BIN / "ansible-rulebook").exists(), reason="needs ansible-rulebook (bootstrap.sh)"),
    pytest.mark.skipif(shutil.which("java") is None, reason="needs Java 17 (openjdk-17-jre-headless)"),
]


class Controller:
    """The four calls, recorded; every launch's body is kept."""

    def __init__(self) -> None:
        self.launches: list[dict[str, Any]] = []
        self.authorizations: set[str] = set()
        self.port = free_port()
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v2/config/", self._config)
        app.router.add_get("/api/v2/unified_job_templates/", self._templates)
        app.router.add_post("/api/v2/job_templates/7/launch/", self._launch)
        app.router.add_get("/api/v2/jobs/", self._jobs)
        return app

    async def _config(self, request: web.Request) -> web.Response:
        self.authorizations.add(request.headers.get("Authorization", ""))
        return web.json_response({"version": "24.6.1", "license_info": {}})

    async def _templates(self, request: web.Request) -> web.Response:
        found = [
            {
                "id": 7,
                "type": "job_template",
                "url": "/api/v2/job_templates/7/",
                "related": {"launch": "/api/v2/job_templates/7/launch/"},
                "summary_fields": {"organization": {"id": 1, "name": "Default"}},
                "name": TEMPLATE,
                "ask_limit_on_launch": True,
                "ask_labels_on_launch": False,
                "ask_inventory_on_launch": False,
                "ask_variables_on_launch": True,
            }
        ]
        results = [t for t in found if t["name"] == request.query.get("name")]
        return web.json_response({"count": len(results), "next": None, "previous": None, "results": results})

    async def _launch(self, request: web.Request) -> web.Response:
        self.authorizations.add(request.headers.get("Authorization", ""))
        self.launches.append(await request.json())
        job = 100 + len(self.launches)
        body = {"job": job, "id": job, "type": "job", "url": f"/api/v2/jobs/{job}/", "status": "pending"}
        return web.json_response(body, status=201)

    async def _jobs(self, request: web.Request) -> web.Response:
        ids = [i for i in request.query.get("id__in", "").split(",") if i]
        results = [
            {"id": int(i), "type": "job", "url": f"/api/v2/jobs/{i}/", "status": "successful", "artifacts": {}}
            for i in ids
        ]
        return web.json_response({"count": len(results), "next": None, "previous": None, "results": results})

    def serve(self) -> None:
        async def main() -> None:
            self.runner = web.AppRunner(self.app())
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
            self.ready.set()
            while self.loop is not None:
                await asyncio.sleep(0.1)
            await self.runner.cleanup()

        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(main())


@pytest.fixture
def controller() -> Iterator[Controller]:
    stand_in = Controller()
    thread = threading.Thread(target=stand_in.serve, daemon=True)
    thread.start()
    assert stand_in.ready.wait(10)
    yield stand_in
    stand_in.loop = None
    thread.join(10)


def _post(url: str, body: Any) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Authorization": f"Bearer {TOKEN}"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def test_the_controller_rulebook_launches_the_job_template_once_with_checked_values(
    controller: Controller, tmp_path: Path
) -> None:
    port = free_port()
    variables = {"depmirror_graph": str(GRAPH), "depmirror_eda_host": "127.0.0.1", "depmirror_eda_port": port}
    (tmp_path / "vars.yml").write_text(yaml.safe_dump(variables))
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "DEPMIRROR_EDA_TOKEN": TOKEN,
    }
    argv = [
        str(BIN / "ansible-rulebook"),
        *("-r", str(RULEBOOK), "--vars", "vars.yml", "-E", "DEPMIRROR_EDA_TOKEN", "-v"),
        *("--controller-url", f"http://127.0.0.1:{controller.port}", "--controller-token", CONTROLLER_TOKEN),
    ]
    log = tmp_path / "rulebook.log"
    canaries = Canaries(tmp_path)
    with log.open("wb") as output:
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        url = f"http://127.0.0.1:{port}/alertmanager"
        deadline = time.monotonic() + 60
        while _post(url, {}) != 400:  # the source answers: an empty object is no v4 notification
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        hostile = [
            alert("catalog-api", "catalog-api@vm-a1", fingerprint=f"{i:016x}", alertname=p.text(canaries, "name"))
            for i, p in enumerate(PAYLOADS)
        ]
        assert _post(url, notification(*hostile)) == 202
        first = alert("catalog-api", "catalog-api@vm-a1", fingerprint="1000000000000161", action="rollback")
        first["annotations"] = {"summary": PAYLOADS[0].text(canaries, "summary")}
        second = alert("catalog-api", "vm-b2", fingerprint="00000000000000b2", action="rollback")
        assert _post(url, notification(first, second)) == 202
        deadline = time.monotonic() + 30
        while not controller.launches and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # a second launch would come now: the throttle must hold it back
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    text = log.read_text(errors="replace")
    assert len(controller.launches) == 1, text[-3000:]
    assert controller.authorizations == {f"Bearer {CONTROLLER_TOKEN}"}
    # rollback.yml decides on localhost: a limit of `all` alone would skip that play.
    assert controller.launches[0]["limit"] == "all,localhost"
    extra_vars = controller.launches[0]["extra_vars"]
    event = extra_vars.pop("ansible_eda")["event"]
    assert extra_vars == {
        "depmirror_dependency": "catalog-api",
        "depmirror_failed_instance": "catalog-api@vm-a1",
        "depmirror_trigger": {
            "type": "alert",
            "source": "depmirror.mirroring.alertmanager",
            "alertname": "DependencyDown",
            "fingerprint": "1000000000000161",  # text: "{{ event.fingerprint }}" would make it an int
            "starts_at": "2026-01-01T00:00:00+00:00",
            "received_at": event["trigger"]["received_at"],
        },
    }
    # What ansible-rulebook adds to the event is its own (meta); the rest is the source's checked fields.
    assert set(event) - {"meta"} == {
        *("dependency", "instance", "zone", "status", "action", "alertname", "fingerprint", "startsAt", "trigger")
    }
    assert "summary" not in json.dumps(controller.launches)
    assert text.count("depmirror.mirroring.alertmanager: ignored") == len(PAYLOADS)
    assert canaries.found(deep=(tmp_path,)) == []
