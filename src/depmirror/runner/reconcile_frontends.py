"""How reconciliation launches an adjust: pyinfra (`depmirror pyinfra adjust --limit`), ansible-runner (adjust.yml
with --limit) or an AWX job template (its limit prompt). Each returns the runner's ActionResult; none raises for
a run that failed: the loop records it and tries again after its rate limit."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import shlex
import shutil
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import ansible_runner

from depmirror.errors import DepmirrorError
from depmirror.graph.load import load_graph
from depmirror.runner.actions import ActionResult
from depmirror.runner.awx_action import AwxAction
from depmirror.runner.config import RunnerConfig
from depmirror.runner.tools import find_tool

KEEP_RUNS = 20
EXCERPT = 800  # the end of what a failed run printed, kept in the event


@dataclass(frozen=True, slots=True)
class AdjustRequest:
    reconcile_id: str
    # The hosts the run may touch (changed hosts and every load balancer); empty: the whole fleet.
    limit: tuple[str, ...] = ()


class Frontend(Protocol):
    name: str
    # True: the run applies the whole plan whatever it is asked (a frontend without a limit).
    whole_plan: bool

    async def adjust(self, request: AdjustRequest) -> ActionResult: ...

    async def problems(self) -> list[str]: ...

    def cancel(self) -> None: ...


def build_frontend(config: RunnerConfig) -> Frontend:
    kind = config.reconcile.frontend
    if kind == "pyinfra":
        return PyinfraFrontend(config)
    if kind == "ansible":
        return AnsibleFrontend(config)
    return AwxFrontend(config)


class PyinfraFrontend:
    """`python -m depmirror.frontends.pyinfra adjust --limit HOSTS` in a process of its own (gevent must patch
    the standard library before anything opens a socket, which the runner has long done). Limited to the
    changed hosts and the load balancers, as the ansible-runner frontend: a cut-off VM or a held dependency
    elsewhere in the fleet does not fail or hold this adjust."""

    name = "pyinfra"
    whole_plan = False

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config.reconcile

    async def problems(self) -> list[str]:
        if importlib.util.find_spec("pyinfra") is None:
            return ["the pyinfra frontend needs pyinfra (pip install 'depmirror-mirroring[pyinfra]')"]
        return []

    def cancel(self) -> None:
        pass  # a cancelled adjust() kills its process group itself

    def argv(self, limit: tuple[str, ...] = ()) -> list[str]:
        ssh = self.config.ssh
        argv = [sys.executable, "-m", "depmirror.frontends.pyinfra", "adjust", "-i", str(self.config.fleet_file)]
        argv += ["--json", "--ssh-user", ssh.user, "--ssh-port", str(ssh.port)]
        argv += ["--connect-timeout", str(max(1, min(120, round(ssh.connect_timeout_s))))]
        if ssh.key_file:
            argv += ["--ssh-key", ssh.key_file]
        if ssh.known_hosts:
            argv += ["--known-hosts", ssh.known_hosts]
        if ssh.become:
            argv.append("--become")
        if limit:
            # Host names are the graph's (checked against its name pattern), never alert text; one argument.
            argv.append("--limit=" + ",".join(limit))
        return argv

    def in_graph(self, limit: tuple[str, ...]) -> tuple[str, ...]:
        """The limit without hosts the graph no longer has: the old plan can name a VM taken out of the graph,
        which no inventory holds (ansible-playbook ignores such a name; the pyinfra frontend refuses it, and
        fleet/partial.py decides that host's instances from the plan alone)."""
        if self.config.graph is None or not limit:
            return limit
        try:
            graph = load_graph(self.config.graph)
        except DepmirrorError:
            return limit  # the frontend loads it too, and reports what is wrong with it
        known = {*graph.vms, *graph.load_balancers}
        return tuple(h for h in limit if h in known) or limit

    async def adjust(self, request: AdjustRequest) -> ActionResult:
        missing = await self.problems()
        if missing:
            return ActionResult(outcome="error", detail=missing[0])
        limit = await asyncio.to_thread(self.in_graph, request.limit)
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv(limit),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group: a timeout ends pyinfra's SSH children too
            )
        except OSError as error:
            return ActionResult(outcome="error", detail=f"cannot start the pyinfra frontend: {error}")
        handle = f"pid:{process.pid}"
        try:
            out, err = await asyncio.wait_for(process.communicate(), self.config.timeout_s)
        except TimeoutError:
            _kill_group(process.pid)
            await process.wait()
            return ActionResult(
                outcome="failed",
                detail=f"depmirror pyinfra adjust still ran after {self.config.timeout_s:.0f}s; ended",
                external_id=handle,
            )
        except asyncio.CancelledError:
            _kill_group(process.pid)
            raise
        return _pyinfra_result(process.returncode, out, err, handle)


def _pyinfra_result(rc: int | None, out: bytes, err: bytes, handle: str) -> ActionResult:
    said = err.decode("utf-8", "replace").strip()[-EXCERPT:]
    if rc != 0:
        return ActionResult(
            outcome="failed",
            detail=f"depmirror pyinfra adjust exited {rc}: {said or '(no output)'}",
            external_id=handle,
            details={"rc": rc},
        )
    try:
        report = json.loads(out)
        changed = int(report["changed"])
        recorded = bool((report.get("recorded") or {}).get("changed"))
    except (ValueError, KeyError, TypeError):
        return ActionResult(
            outcome="failed", detail="depmirror pyinfra adjust printed no report", external_id=handle, details={"rc": 0}
        )
    return ActionResult(
        outcome="succeeded",
        detail=f"depmirror pyinfra adjust: {changed} operations changed",
        external_id=handle,
        details={"rc": 0, "operations_changed": changed, "plan_recorded": recorded},
    )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class AnsibleFrontend:
    """playbooks/adjust.yml through ansible-runner, with --limit (fleet/partial.py says what a limited run
    applies), one private data dir per run under action.work_dir/reconcile."""

    name = "ansible"
    whole_plan = False

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config.reconcile
        self.envvars = dict(config.action.envvars)
        self.work_dir = config.action.work_dir / "reconcile"
        self.binary = find_tool("ansible-playbook")
        self._cancel = threading.Event()

    async def problems(self) -> list[str]:
        found = []
        if self.binary is None:
            found.append("ansible-playbook is neither beside the runner's Python nor on PATH")
        if not self.config.playbook.is_file():
            found.append(f"playbook {self.config.playbook} does not exist")
        return found

    def cancel(self) -> None:
        self._cancel.set()

    async def adjust(self, request: AdjustRequest) -> ActionResult:
        problems = await self.problems()
        if problems:
            return ActionResult(outcome="error", detail="; ".join(problems))
        data_dir = self.work_dir / request.reconcile_id
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            return await asyncio.to_thread(self._run, request, data_dir)
        finally:
            await asyncio.to_thread(_prune, self.work_dir, KEEP_RUNS)

    def _run(self, request: AdjustRequest, data_dir: Path) -> ActionResult:
        playbook = self.config.playbook
        cmdline = shlex.quote(str(playbook))
        if request.limit:
            # Host names are the graph's (checked against its name pattern), never alert text.
            cmdline += " --limit " + shlex.quote(",".join(request.limit))
        assert self.binary is not None
        kwargs: dict[str, Any] = {
            "private_data_dir": str(data_dir),
            "project_dir": str(playbook.parent),
            "binary": self.binary,
            "cmdline": cmdline,
            "inventory": [str(path) for path in self.config.inventory],
            "envvars": self.envvars,
            "quiet": True,
            "timeout": int(self.config.timeout_s),
            "cancel_callback": self._cancel.is_set,
            "ident": "run",
        }
        try:
            result = ansible_runner.run(**kwargs)
        except Exception as error:  # ansible-runner raises plain exceptions for bad setups
            return ActionResult(outcome="error", detail=f"ansible-runner could not start: {error}")
        ok = result.status == "successful" and result.rc == 0
        return ActionResult(
            outcome="succeeded" if ok else "failed",
            detail=f"playbook {playbook.name} {result.status} (rc {result.rc})",
            details={"status": result.status, "rc": result.rc, "artifacts": str(data_dir / "artifacts" / "run")},
        )


def _prune(work_dir: Path, keep: int) -> None:
    runs = sorted((p for p in work_dir.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in runs[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


class AwxFrontend:
    """The adjust job template (docs/awx.md: it prompts for a limit), launched with the runner's AWX token."""

    name = "awx"
    whole_plan = False

    def __init__(self, config: RunnerConfig) -> None:
        assert config.action.awx is not None and config.reconcile.awx_job_template_id is not None
        self.template = config.reconcile.awx_job_template_id
        # The rollback action's client: its token, TLS and Jinja-setting checks, and its way of following a job.
        self.awx = AwxAction(config.action.awx, config.reconcile.timeout_s)

    async def problems(self) -> list[str]:
        return await self.awx.problems()

    def cancel(self) -> None:
        pass

    async def adjust(self, request: AdjustRequest) -> ActionResult:
        problems = await self.awx.problems()
        if problems:
            return ActionResult(outcome="error", detail="not launched: " + "; ".join(problems))
        url = f"{self.awx.config.url}/api/v2/job_templates/{self.template}/launch/"
        body = {"limit": ",".join(request.limit)} if request.limit else {}
        try:
            async with self.awx._session() as session:
                async with session.post(url, json=body) as response:
                    try:
                        answer = await response.json(content_type=None)
                    except (ValueError, aiohttp.ContentTypeError):
                        answer = None
                    job = answer.get("job") if isinstance(answer, dict) else None
                    if response.status != 201 or not isinstance(job, int) or isinstance(job, bool):
                        return ActionResult(
                            outcome="failed",
                            detail=f"AWX refused the launch of template {self.template}: HTTP {response.status}",
                        )
                return await self.awx._wait(session, str(job))
        except (aiohttp.ClientError, TimeoutError) as error:
            return ActionResult(outcome="failed", detail=f"AWX unreachable: {type(error).__name__}: {error}")
