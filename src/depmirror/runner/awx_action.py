"""Launch an AWX job template and wait for the job (AWX API v2, bearer token)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from depmirror.runner.actions import ActionRequest, ActionResult, Started
from depmirror.runner.config import AwxConfig

FINISHED = {"successful": "succeeded", "failed": "failed", "error": "failed", "canceled": "failed"}


class AwxAction:
    name = "awx"

    def __init__(self, config: AwxConfig, timeout_s: float) -> None:
        self.config = config
        self.timeout_s = timeout_s

    def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.config.token}", "Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=30),
            connector=aiohttp.TCPConnector(ssl=self.config.verify_tls),
        )

    async def run(self, request: ActionRequest, started: Started) -> ActionResult:
        template = (
            self.config.job_template_id
            if request.kind == "rollback"
            else self.config.failback_job_template_id
        )
        if template is None:
            return ActionResult(outcome="failed", detail="no AWX job template configured for failback")
        url = f"{self.config.url}/api/v2/job_templates/{template}/launch/"
        try:
            async with self._session() as session:
                async with session.post(url, json={"extra_vars": request.extra_vars()}) as response:
                    body = await _json(response)
                    if response.status != 201 or not isinstance(body.get("job"), int):
                        return ActionResult(
                            outcome="failed",
                            detail=f"AWX refused the launch of template {template}: HTTP {response.status}",
                            details={"awx_response": _excerpt(body)},
                        )
                job = str(body["job"])
                await started(job)
                return await self._wait(session, job)
        except (aiohttp.ClientError, TimeoutError) as error:
            return ActionResult(outcome="failed", detail=f"AWX unreachable: {type(error).__name__}: {error}")

    async def follow(self, external_id: str) -> ActionResult | None:
        try:
            async with self._session() as session:
                return await self._wait(session, external_id)
        except (aiohttp.ClientError, TimeoutError) as error:
            return ActionResult(
                outcome="failed",
                detail=f"AWX unreachable while following job {external_id}: {error}",
                external_id=external_id,
            )

    async def _wait(self, session: aiohttp.ClientSession, job: str) -> ActionResult:
        url = f"{self.config.url}/api/v2/jobs/{job}/"
        deadline = time.monotonic() + self.timeout_s
        status = "unknown"
        while time.monotonic() < deadline:
            async with session.get(url) as response:
                body = await _json(response)
            if response.status == 200:
                status = str(body.get("status", "unknown"))
                if status in FINISHED:
                    outcome = "succeeded" if FINISHED[status] == "succeeded" else "failed"
                    return ActionResult(
                        outcome=outcome,  # type: ignore[arg-type]
                        detail=f"AWX job {job} {status}",
                        external_id=job,
                        details={"awx_job": int(job), "awx_status": status},
                    )
            await asyncio.sleep(self.config.poll_interval_s)
        async with session.post(f"{url}cancel/") as response:
            cancel_status = response.status
        return ActionResult(
            outcome="failed",
            detail=f"AWX job {job} still {status} after {self.timeout_s:.0f}s; cancel requested",
            external_id=job,
            details={"awx_job": int(job), "awx_status": status, "cancel_http_status": cancel_status},
        )


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return {}
    return body if isinstance(body, dict) else {}


def _excerpt(body: dict[str, Any]) -> dict[str, Any]:
    return {key: str(value)[:200] for key, value in list(body.items())[:10]}
