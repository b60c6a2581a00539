"""Launch an AWX job template and wait for the job (AWX API v2, bearer token)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from depmirror.runner.actions import ActionRequest, ActionResult, Started
from depmirror.runner.config import AwxConfig

FINISHED = {"successful": "succeeded", "failed": "failed", "error": "failed", "canceled": "failed"}
# AWX's ALLOW_JINJA_IN_EXTRA_VARS values under which launch-time extra vars reach Ansible as unsafe
# (never templated); `always` would let alert text run as Jinja on the execution node.
JINJA_SAFE = ("template", "never")
JINJA_SETTING = "ALLOW_JINJA_IN_EXTRA_VARS"
CHECK_TTL_S = 10.0
PROBE_TIMEOUT_S = 0.8


class AwxAction:
    name = "awx"

    def __init__(self, config: AwxConfig, timeout_s: float) -> None:
        self.config = config
        self.timeout_s = timeout_s
        self._checked_at = -CHECK_TTL_S
        self._problems: list[str] = []

    def _session(self, timeout_s: float = 30.0) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.config.token}", "Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            connector=aiohttp.TCPConnector(ssl=self.config.verify_tls),
        )

    async def problems(self) -> list[str]:
        """Why a launch cannot go ahead now: AWX unreachable, the token refused, or AWX set to template
        launch-time extra vars. Asked of AWX at most every CHECK_TTL_S seconds."""
        if time.monotonic() - self._checked_at < CHECK_TTL_S:
            return self._problems
        try:
            async with self._session(PROBE_TIMEOUT_S) as session:
                self._problems = await self._ask(session)
        except (aiohttp.ClientError, TimeoutError) as error:
            self._problems = [f"AWX unreachable at {self.config.url}: {type(error).__name__}: {error}"]
        self._checked_at = time.monotonic()
        return self._problems

    async def _ask(self, session: aiohttp.ClientSession) -> list[str]:
        async with session.get(f"{self.config.url}/api/v2/me/") as response:
            if response.status in (401, 403):
                return [f"AWX refused the runner's token (HTTP {response.status} from /api/v2/me/)"]
            if response.status != 200:
                return [f"AWX answered HTTP {response.status} to /api/v2/me/"]
        if not self.config.verify_jinja_setting:
            return []
        async with session.get(f"{self.config.url}/api/v2/settings/jobs/") as response:
            body = await _json(response)
            if response.status != 200:
                return [
                    f"cannot read AWX's {JINJA_SETTING} (HTTP {response.status} from /api/v2/settings/jobs/); "
                    "give the runner's token the System Auditor role, or check the setting is template or "
                    "never and set action.awx.verify_jinja_setting: false"
                ]
        value = body.get(JINJA_SETTING)
        if value not in JINJA_SAFE:
            return [
                f"AWX's {JINJA_SETTING} is {value!r}: launch-time extra vars (alert text) would be templated; "
                f"set it to template (AWX's default) or never"
            ]
        return []

    async def run(self, request: ActionRequest, started: Started) -> ActionResult:
        template = self.config.job_template_id if request.kind == "rollback" else self.config.failback_job_template_id
        if template is None:
            return ActionResult(outcome="error", detail="no AWX job template configured for failback")
        problems = await self.problems()
        if problems:
            return ActionResult(outcome="error", detail="not launched: " + "; ".join(problems))
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
