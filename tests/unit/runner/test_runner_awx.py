"""The AWX action against FAKE AWX (tests/fakes/awx.py, built from AWX's documented API v2 shapes)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from aiohttp.test_utils import TestServer
from tests.fakes.awx import FakeAwx

from depmirror.runner.actions import ActionRequest
from depmirror.runner.awx_action import AwxAction
from depmirror.runner.config import AwxConfig


def _request(kind: str = "rollback") -> ActionRequest:
    return ActionRequest(
        action_id="a1",
        kind=kind,  # type: ignore[arg-type]
        dependency="payments",
        instance="payments-a",
        trigger={"type": "alert", "fingerprint": "f1"},
        store_url="sqlite:////tmp/x.db",
        candidates=("payments-b",),
    )


async def _with_awx(fake: FakeAwx, token: str, body: Any) -> Any:
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    try:
        config = AwxConfig(
            url=str(server.make_url("")).rstrip("/"),
            token=token,
            job_template_id=7,
            failback_job_template_id=8,
            poll_interval_s=0.01,
        )
        return await body(AwxAction(config, timeout_s=5))
    finally:
        await server.close()


def test_launch_polls_until_the_job_finishes() -> None:
    fake = FakeAwx(token="awx-token", templates={7: "successful", 8: "failed"}, steps=3)
    handles: list[str] = []

    async def started(job: str) -> None:
        handles.append(job)

    async def body(action: AwxAction) -> Any:
        return await action.run(_request(), started), await action.run(_request("failback"), started)

    rollback, failback = asyncio.run(_with_awx(fake, "awx-token", body))
    assert (rollback.outcome, rollback.external_id) == ("succeeded", "101")
    assert failback.outcome == "failed" and "failed" in failback.detail
    assert handles == ["101", "102"]
    job = fake.jobs[101]
    assert job.template == 7 and job.polls == 3
    assert job.extra_vars["depmirror_failed_instance"] == "payments-a"
    assert job.extra_vars["depmirror_candidates"] == ["payments-b"]
    assert fake.jobs[102].extra_vars["depmirror_recovered_instance"] == "payments-a"


def test_refused_token_is_an_action_that_could_not_start_not_a_crash() -> None:
    fake = FakeAwx(token="awx-token")

    async def started(job: str) -> None:
        raise AssertionError("no job was launched")

    async def body(action: AwxAction) -> Any:
        return await action.run(_request(), started)

    result = asyncio.run(_with_awx(fake, "wrong-token", body))
    # It never started, so it changed nothing: an error, which starts no cooldown.
    assert result.outcome == "error" and "HTTP 401" in result.detail
    assert fake.launches == 0


def test_awx_that_templates_launch_time_extra_vars_gets_no_launch() -> None:
    fake = FakeAwx(token="awx-token", allow_jinja_in_extra_vars="always")

    async def body(action: AwxAction) -> Any:
        return await action.run(_request(), _noop), await action.problems()

    result, problems = asyncio.run(_with_awx(fake, "awx-token", body))
    assert result.outcome == "error" and "ALLOW_JINJA_IN_EXTRA_VARS is 'always'" in result.detail
    assert fake.launches == 0
    assert problems and "template" in problems[0]


def test_awx_setting_that_cannot_be_read_blocks_launch_unless_checked_by_hand() -> None:
    fake = FakeAwx(token="awx-token", can_read_settings=False)

    async def refused(action: AwxAction) -> Any:
        return await action.run(_request(), _noop)

    result = asyncio.run(_with_awx(fake, "awx-token", refused))
    assert result.outcome == "error" and "HTTP 403" in result.detail and "System Auditor" in result.detail
    assert fake.launches == 0

    async def trusted(action: AwxAction) -> Any:
        action.config = replace(action.config, verify_jinja_setting=False)
        return await action.run(_request(), _noop)

    assert asyncio.run(_with_awx(fake, "awx-token", trusted)).outcome == "succeeded"
    assert fake.launches == 1


def test_follow_waits_for_a_job_started_before_a_restart() -> None:
    fake = FakeAwx(token="awx-token")

    async def body(action: AwxAction) -> Any:
        await action.run(_request(), _noop)
        fake.jobs[101].status, fake.jobs[101].polls = "running", 0
        return await action.follow("101")

    result = asyncio.run(_with_awx(fake, "awx-token", body))
    assert result is not None and result.outcome == "succeeded"
    assert fake.launches == 1  # followed, not launched again


async def _noop(job: str) -> None:
    return None
