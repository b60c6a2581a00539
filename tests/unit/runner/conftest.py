"""A runner assembled in-process from a real config file, a real SQLite store and aiohttp's test client."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from tests.fakes.webhook import TOKEN, free_port

from depmirror.runner.app import build_app
from depmirror.runner.config import RunnerConfig, load_config
from depmirror.runner.health import UnknownHealthChecker
from depmirror.runner.metrics import RunnerMetrics
from depmirror.runner.store_caller import StoreCaller
from depmirror.runner.worker import Worker
from depmirror.store import open_store

# The instances the runner's alerts may name: payments on three hosts, cache on two.
KNOWN_INSTANCES = {"payments": ["payments-a", "payments-b", "payments-c"], "cache": ["cache-a", "cache-b"]}


class Harness:
    def __init__(self, config: RunnerConfig, action: Any, health: Any) -> None:
        self.config = config
        self.store = open_store(config.store)
        self.db = StoreCaller(self.store)
        self.metrics = RunnerMetrics()
        self.worker = Worker(config, self.db, action, health, self.metrics)
        self.action = action

    async def client(self) -> TestClient[Any, Any]:
        # A fresh app per client: each test step may run in its own event loop.
        problems = getattr(self.action, "problems", None)
        self.app = build_app(
            self.config, self.db, self.metrics, self.worker.wake.set, lambda: True, action_problems=problems
        )
        client: TestClient[Any, Any] = TestClient(TestServer(self.app))
        await client.start_server()
        return client

    async def post(self, client: TestClient[Any, Any], body: Any, token: str = TOKEN) -> Any:
        data = body if isinstance(body, bytes | str) else json.dumps(body)
        return await client.post("/alertmanager", data=data, headers={"Authorization": f"Bearer {token}"})

    async def deliver(self, *payloads: Any) -> None:
        """Alertmanager's webhooks, each accepted (202), then the worker drained."""
        client = await self.client()
        try:
            for payload in payloads:
                assert (await self.post(client, payload)).status == 202
        finally:
            await client.close()
        await self.settle()

    async def settle(self, rounds: int = 20) -> None:
        """Let the worker drain the queue (bounded)."""
        for _ in range(rounds):
            await self.worker.dispatch()
            await self.worker.drain(10.0)
            if await self.db(self.store.queue_depth) == 0 or not self.store.pending(datetime.now(UTC)):
                return

    def close(self) -> None:
        self.db.shutdown()
        self.store.close()


@pytest.fixture
def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., RunnerConfig]:
    monkeypatch.setenv("DEPMIRROR_TEST_TOKEN", TOKEN)
    counter = itertools.count()

    def write(**overrides: Any) -> RunnerConfig:
        data: dict[str, Any] = {
            "listen": {"host": "127.0.0.1", "port": free_port()},
            "auth": {"type": "bearer", "token_env": "DEPMIRROR_TEST_TOKEN"},
            "store": f"history-{next(counter)}.db",
            "dependencies": KNOWN_INSTANCES,
            "mode": "shadow",
            "policy": {"on_unknown_health": "delegate", "cooldown_seconds": 300},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        playbook = tmp_path / "playbooks" / "rollback.yml"
        if not playbook.exists():
            playbook.parent.mkdir()
            playbook.write_text("- hosts: localhost\n  gather_facts: false\n  tasks: []\n")
        path = tmp_path / "runner.yml"
        path.write_text(yaml.safe_dump(data))
        return load_config(path)

    return write


@pytest.fixture
def harness(write_config: Callable[..., RunnerConfig]) -> Any:
    made: list[Harness] = []

    def make(action: Any = None, health: Any = None, **overrides: Any) -> Harness:
        built = Harness(write_config(**overrides), action, health or UnknownHealthChecker())
        made.append(built)
        return built

    yield make
    for built in made:
        built.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)
