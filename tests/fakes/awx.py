"""FAKE AWX: a stand-in for the two AWX API v2 endpoints the runner uses. AWX cannot run on this machine.

Built from AWX's documented shapes (AWX API reference, "Job Templates: Launch" and "Jobs: Retrieve"):
- POST /api/v2/job_templates/{id}/launch/ with {"extra_vars": {...}} -> 201 {"job": N, "id": N, "type": "job",
  "status": "pending", "ignored_fields": {}, ...}; 401 without a valid token; 404 for an unknown template.
- GET /api/v2/jobs/{id}/ -> 200 {"id": N, "type": "job", "status": "pending"|"running"|"successful"|"failed",
  "failed": bool, "job_template": T, "extra_vars": "<JSON text>", ...}.
- POST /api/v2/jobs/{id}/cancel/ -> 202.
- GET /api/v2/me/ -> 200 {"count": 1, "results": [{"id": 1, "type": "user", "username": ...}]}; 401 without
  a valid token ("Users: Retrieve the current user").
- GET /api/v2/settings/jobs/ -> 200 {"ALLOW_JINJA_IN_EXTRA_VARS": "template", "AWX_ISOLATION_BASE_PATH":
  ..., ...} for a superuser or system auditor, 403 {"detail": "You do not have permission to perform this
  action."} for anyone else ("Settings: Retrieve a Setting", category `jobs`).
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
    # AWX's default; "always" lets launch-time extra vars be templated.
    allow_jinja_in_extra_vars: str = "template"
    # False: the token belongs to a user who is neither superuser nor system auditor.
    can_read_settings: bool = True

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v2/job_templates/{template}/launch/", self._launch)
        app.router.add_get("/api/v2/jobs/{job}/", self._job)
        app.router.add_post("/api/v2/jobs/{job}/cancel/", self._cancel)
        app.router.add_get("/api/v2/me/", self._me)
        app.router.add_get("/api/v2/settings/jobs/", self._job_settings)
        return app

    async def _me(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"detail": "Authentication credentials were not provided."}, status=401)
        return web.json_response({"count": 1, "results": [{"id": 1, "type": "user", "username": "depmirror"}]})

    async def _job_settings(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"detail": "Authentication credentials were not provided."}, status=401)
        if not self.can_read_settings:
            return web.json_response({"detail": "You do not have permission to perform this action."}, status=403)
        return web.json_response(
            {
                "ALLOW_JINJA_IN_EXTRA_VARS": self.allow_jinja_in_extra_vars,
                "AWX_ISOLATION_BASE_PATH": "/tmp",
                "DEFAULT_JOB_TIMEOUT": 0,
            }
        )

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
        job = FakeJob(id=100 + self.launches, template=template, extra_vars=extra_vars, final=self.templates[template])
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
