"""The runner's launches against FAKE AWX carrying the surveys extensions/awx/job_templates.json ships: what
the runner sends answers them, and a launch AWX refuses (400 variables_needed_to_start) fails the action."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from aiohttp.test_utils import TestServer
from tests.fakes.awx import FakeAwx

from depmirror.runner.actions import ActionRequest
from depmirror.runner.awx_action import AwxAction
from depmirror.runner.config import AwxConfig

REQUEST = ActionRequest(
    action_id="a1",
    kind="rollback",
    dependency="payments-api",
    instance="payments-api@vm-a1",
    trigger={"type": "alert", "fingerprint": "f1"},
    store_url="postgresql://depmirror@db/depmirror",
)


async def _launch(fake: FakeAwx, request: ActionRequest) -> Any:
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    try:
        config = AwxConfig(
            url=str(server.make_url("")).rstrip("/"),
            token="awx-token",
            job_template_id=7,
            failback_job_template_id=8,
            poll_interval_s=0.01,
        )

        async def started(_job: str) -> None:
            return None

        return await AwxAction(config, timeout_s=5).run(request, started)
    finally:
        await server.close()


def _fake() -> FakeAwx:
    fake = FakeAwx(token="awx-token", templates={7: "successful", 8: "successful"})
    return fake.with_shipped_surveys({7: "depmirror rollback", 8: "depmirror failback"})


def test_the_runner_answers_the_shipped_rollback_and_failback_surveys() -> None:
    fake = _fake()
    rollback = asyncio.run(_launch(fake, REQUEST))
    failback = asyncio.run(_launch(fake, replace(REQUEST, kind="failback")))
    assert (rollback.outcome, failback.outcome) == ("succeeded", "succeeded"), (rollback.detail, failback.detail)
    assert fake.jobs[101].extra_vars["depmirror_failed_instance"] == "payments-api@vm-a1"
    assert fake.jobs[102].extra_vars["depmirror_recovered_instance"] == "payments-api@vm-a1"


def test_a_launch_the_survey_refuses_fails_the_action_and_starts_no_job() -> None:
    fake = _fake()
    too_long = replace(REQUEST, instance="x" * 600)  # the survey's max is 512
    result = asyncio.run(_launch(fake, too_long))
    assert result.outcome == "failed" and "HTTP 400" in result.detail
    assert fake.launches == 0
