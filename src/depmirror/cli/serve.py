"""`depmirror serve --config FILE`: the alert-driven runner (docs/runner.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import replace
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the Alertmanager webhook runner",
        description="Receive Alertmanager webhooks, queue them durably, and run rollbacks (docs/runner.md).",
    )
    parser.add_argument("--config", required=True, help="runner config file (YAML)")
    parser.add_argument("--shadow", action="store_true", help="decide and record, never act (overrides mode)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Here, not at the top: the runner (aiohttp, ansible-runner) is what `serve` alone needs, and every other
    # command would pay for importing it. Not a cycle: nothing imports the CLI.
    from depmirror.runner.config import load_config
    from depmirror.runner.secrets import install_redaction, scrub_environment
    from depmirror.runner.service import serve

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)
    if args.shadow:
        config = replace(config, mode="shadow")
    install_redaction(config.secrets())
    # Secrets leave the environment once read: playbooks and ansible-runner's artifacts (which dump
    # the whole environment) must not see the webhook or AWX token, nor must /proc/<pid>/environ.
    scrub_environment(config.secret_envs)
    asyncio.run(serve(config))
    return 0
