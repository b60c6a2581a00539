"""`depmirror switchover DEP [--dry-run] [--target HOST]`: ask the runner (its API) to switch a dependency's
primary, or to say what it would decide. Through the runner, so the switch goes through its queue, lease
and fencing like an alert would (docs/runner.md, "API")."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from depmirror.errors import ConfigError

TOKEN_ENV = "DEPMIRROR_API_TOKEN"
TIMEOUT_S = 30.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "switchover",
        help="switch a dependency's primary through the runner, or rehearse it (--dry-run)",
        description=f"Calls POST /api/v1/dependencies/DEP/switchover on the runner; the token (scope operate) "
        f"comes from ${TOKEN_ENV}.",
    )
    parser.add_argument("dependency", metavar="DEP")
    parser.add_argument("--dry-run", action="store_true", help="say what the runner would decide; change nothing")
    parser.add_argument("--target", help="the instance to switch to (HOST or DEP@HOST); default: the best healthy")
    parser.add_argument(
        "--runner",
        default=os.environ.get("DEPMIRROR_RUNNER_URL", "http://127.0.0.1:9466"),
        help="the runner's base URL (default: $DEPMIRROR_RUNNER_URL, else %(default)s)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.runner.startswith(("http://", "https://")):
        raise ConfigError("command line", "--runner", f"{args.runner!r} is not an http(s) URL")
    body: dict[str, Any] = {"dry_run": bool(args.dry_run)}
    if args.target:
        body["target"] = args.target
    url = f"{args.runner.rstrip('/')}/api/v1/dependencies/{urllib.parse.quote(args.dependency, safe='')}/switchover"
    headers = {"Content-Type": "application/json"}
    token = os.environ.get(TOKEN_ENV)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            status, answer = response.status, _json(response.read())
    except urllib.error.HTTPError as error:
        status, answer = error.code, _json(error.read())
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ConfigError(args.runner, "--runner", f"cannot reach the runner: {reason}") from error
    if args.format == "json":
        print(json.dumps({"status": status, **answer}, indent=2))
    else:
        print(_text(status, answer))
    return 0 if status in (200, 202) and answer.get("decision") == "act" else 1


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {"error": raw[:200].decode("utf-8", "replace")}
    return value if isinstance(value, dict) else {"error": str(value)[:200]}


def _text(status: int, answer: dict[str, Any]) -> str:
    if "decision" not in answer:
        return f"HTTP {status}: {answer.get('error', 'no answer')}"
    what = "would switch" if answer.get("dry_run") else ("queued" if answer.get("queued") else "refused")
    if answer["decision"] != "act":
        what = "would refuse" if answer.get("dry_run") else "refused"
    targets = " or ".join(answer.get("candidates") or []) or "(the playbook chooses)"
    line = f"{answer['dependency']}: {what}"
    if answer["decision"] == "act":
        line += f" {answer['instance']} -> {targets}"
    return f"{line}; {answer.get('reason') or ''}".rstrip("; ")
