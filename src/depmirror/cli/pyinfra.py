"""`depmirror pyinfra ...`: hands over to `python -m depmirror.frontends.pyinfra` (docs/pyinfra.md).

A process of its own, because pyinfra needs gevent's monkey patching before anything opens a socket, and
this command's parent has imported ssl and threading already. pyinfra is an optional extra: without it the
command says how to install it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from typing import Any

from depmirror.errors import DepmirrorError

MISSING = "depmirror pyinfra needs pyinfra, an optional extra (fix: pip install 'depmirror-mirroring[pyinfra]')"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pyinfra",
        help="adjust, roll back and fail back with pyinfra instead of ansible-playbook",
        add_help=False,
        prefix_chars="\0",  # every argument, --help included, goes to the frontend's own parser
    )
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    parser.set_defaults(func=_hand_over)


def _hand_over(args: argparse.Namespace) -> int:
    return hand_over(args.rest)


def hand_over(rest: list[str]) -> int:
    """Replace this process with the frontend's; `depmirror.cli.main` calls it before it imports the other
    commands' modules (docs/pyinfra.md, "Speed")."""
    if importlib.util.find_spec("pyinfra") is None:
        raise DepmirrorError(MISSING)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "depmirror.frontends.pyinfra", *rest])
    return 0  # not reached: execv replaces this process
