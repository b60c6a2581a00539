"""The `depmirror` command: one entry point, one module per group of subcommands."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from depmirror import __version__
from depmirror.errors import DepmirrorError

# Each module exposes register(subparsers) and sets `func` on the parsers it adds; keeping the list here
# (not entry points) makes `depmirror --help` independent of how the package was installed.
COMMAND_MODULES = (
    "depmirror.cli.lab",
    "depmirror.cli.planning",
    "depmirror.cli.health",
    "depmirror.cli.history",
    "depmirror.cli.serve",
    "depmirror.cli.store",
    "depmirror.cli.zone",
    "depmirror.cli.policy",
    "depmirror.cli.switchover",
    "depmirror.cli.pyinfra",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depmirror",
        description="Keep critical dependencies mirrored across zones and fail over to a healthy mirror.",
    )
    parser.add_argument("--version", action="version", version=f"depmirror {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["pyinfra"]:
        # Straight to the pyinfra frontend's process: importing every command's module first costs ~0.3 s,
        # a third of a no-op `depmirror pyinfra adjust` (docs/performance.md).
        return _pyinfra(words[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except DepmirrorError as error:
        # Errors in user input are expected: print the message, which names file, field and fix.
        print(f"depmirror: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


def _pyinfra(rest: list[str]) -> int:
    from depmirror.cli.pyinfra import hand_over  # only this command's module: the others are not needed

    try:
        return hand_over(rest)
    except DepmirrorError as error:
        print(f"depmirror: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
