"""FAKE AWX: a stand-in for the two AWX API v2 endpoints the runner uses. AWX cannot run on this machine.

Built from AWX's documented shapes (AWX API reference, "Job Templates: Launch" and "Jobs: Retrieve"):
- POST /api/v2/job_templates/{id}/launch/ with {"extra_vars": {...}} -> 201 {"job": N, "id": N, "type": "job",
  "status": "pending", "ignored_fields": {}, ...}; 401 without a valid token; 404 for an unknown template.
- GET /api/v2/jobs/{id}/ -> 200 {"id": N, "type": "job", "status": "pending"|"running"|"successful"|"failed",
  "failed": bool, "job_template": T, "extra_vars": "<JSON text>", ...}.
- POST /api/v2/jobs/{id}/cancel/ -> 202.
A job here moves pending -> running -> its template's final status, one step per GET.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class FakeJob:
    id: int
    template: int
    extra_vars: dict[str, Any]
    final: str
    polls: int = 0
    status: str = "pending"


@dataclass
class FakeAwx:
    token: str
    # template id -> final status its jobs reach ("successful" or "failed")
    templates: dict[int, str] = field(default_factory=lambda: {7: "successful"})
    # GETs a job needs before it finishes (pending, running..., final)
    steps: int = 2
    jobs: dict[int, FakeJob] = field(default_factory=dict)
    launches: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v2/job_templates/{template}/launch/", self._launch)
        app.router.add_get("/api/v2/jobs/{job}/", self._job)
        app.router.add_post("/api/v2/jobs/{job}/cancel/", self._cancel)
        return app

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization", "") == f"Bearer {self.token}"

    async def _launch(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"detail": "Authentication credentials were not provided."}, status=401)
        template = int(request.match_info["template"])
        if template not in self.templates:
            return web.json_response({"detail": "Not found."}, status=404)
        body = await request.json()
        extra_vars = body.get("extra_vars", {})
        if isinstance(extra_vars, str):
            extra_vars = json.loads(extra_vars)
        self.launches += 1
        job = FakeJob(
            id=100 + self.launches, template=template, extra_vars=extra_vars, final=self.templates[template]
        )
        self.jobs[job.id] = job
        return web.json_response(
            {
                "job": job.id,
                "id": job.id,
                "type": "job",
                "status": "pending",
                "ignored_fields": {},
                "job_template": template,
                "extra_vars": json.dumps(extra_vars),
            },
            status=201,
        )

    async def _job(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"detail": "Authentication credentials were not provided."}, status=401)
        job = self.jobs.get(int(request.match_info["job"]))
        if job is None:
            return web.json_response({"detail": "Not found."}, status=404)
        job.polls += 1
        if job.status not in ("successful", "failed", "canceled"):
            job.status = "running" if job.polls < self.steps else job.final
        return web.json_response(
            {
                "id": job.id,
                "type": "job",
                "status": job.status,
                "failed": job.status == "failed",
                "job_template": job.template,
                "extra_vars": json.dumps(job.extra_vars),
            }
        )

    async def _cancel(self, request: web.Request) -> web.Response:
        job = self.jobs.get(int(request.match_info["job"]))
        if job is not None:
            job.status = "canceled"
        return web.Response(status=202)
