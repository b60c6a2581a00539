"""FAKE AWX: a stand-in for the AWX API v2 endpoints the runner calls. AWX cannot run on this machine.

Built from AWX's documented shapes, every call the runner makes (runner/awx_action.py), with where each is
documented (AWX's API docs are the templates in ansible/awx awx/api/templates/api/, served at each endpoint,
plus the view and serializer they describe):
- POST /api/v2/job_templates/{id}/launch/ with {"extra_vars": {...}} ("Launch a Job Template",
  job_template_launch.md; JobTemplateLaunch.post in awx/api/views) -> 201 {"job": N, "ignored_fields": {...},
  then the job as "Jobs: Retrieve" shows it: "id", "type": "job", "status": "pending", ...}; 400
  {"variables_needed_to_start": [...]} when a required survey answer is missing or out of bounds (the survey
  as job_template_survey_spec.md describes it: here the shipped extensions/awx/job_templates.json's, see
  `with_shipped_surveys`); 401 without a valid token; 404 for an unknown template.
- GET /api/v2/jobs/{id}/ -> 200 {"id": N, "type": "job", "status": one of new, pending, waiting, running,
  successful, failed, error, canceled, "failed": bool, "job_template": T, "extra_vars": "<JSON text>", ...}.
- POST /api/v2/jobs/{id}/cancel/ ("Cancel a Job", job_cancel.md) -> 202 if the job was pending or running,
  405 if it cannot be canceled (already finished).
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
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
FINISHED = ("successful", "failed", "error", "canceled")


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
    # template id -> survey spec ({"name", "description", "spec": [...]}) whose required answers a launch needs
    surveys: dict[int, dict[str, Any]] = field(default_factory=dict)

    def with_shipped_surveys(self, names: dict[int, str]) -> FakeAwx:
        """Give template ids the surveys of the job templates extensions/awx/job_templates.json ships, by name."""
        shipped = json.loads((ROOT / "extensions" / "awx" / "job_templates.json").read_text())["job_templates"]
        by_name = {t["name"]: t for t in shipped}
        self.surveys = {tid: by_name[name]["related"]["survey_spec"] for tid, name in names.items()}
        return self

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
        needed = _survey_problems(self.surveys.get(template), extra_vars)
        if needed:
            return web.json_response({"variables_needed_to_start": needed}, status=400)
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
        if not self._authorized(request):
            return web.json_response({"detail": "Authentication credentials were not provided."}, status=401)
        job = self.jobs.get(int(request.match_info["job"]))
        if job is None:
            return web.json_response({"detail": "Not found."}, status=404)
        if job.status in FINISHED:
            return web.json_response({"error": "Job cannot be canceled."}, status=405)
        job.status = "canceled"
        return web.Response(status=202)


def _survey_problems(survey: dict[str, Any] | None, answers: dict[str, Any]) -> list[str]:
    """What AWX says when a launch misses a required survey answer or one is out of its bounds."""
    problems = []
    for question in (survey or {}).get("spec", []):
        name, value = question["variable"], answers.get(question["variable"])
        if value is None:
            if question.get("required"):
                problems.append(f"'{name}' value missing")
            continue
        if question["type"] == "text" and isinstance(question.get("max"), int) and len(str(value)) > question["max"]:
            problems.append(f"'{name}' value {value} is too large (must be no more than {question['max']}).")
        if question["type"] == "multiplechoice" and str(value) not in question.get("choices", []):
            problems.append(f"Value {value} for '{name}' expected to be one of {question['choices']}.")
    return problems
