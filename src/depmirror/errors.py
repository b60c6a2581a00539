"""Errors a user can act on: each names the file, the field inside it and the fix."""

from __future__ import annotations


class DepmirrorError(Exception):
    """Base for every error depmirror raises on purpose (the CLI prints these without a traceback)."""


class ConfigError(DepmirrorError):
    """Bad input in a file the user wrote: names the file, the dotted field path and what is allowed."""

    def __init__(self, file: str, field: str, problem: str, fix: str = "") -> None:
        self.file = file
        self.field = field
        self.problem = problem
        self.fix = fix
        where = f"{file}: {field}" if field else file
        text = f"{where}: {problem}"
        if fix:
            text += f" (fix: {fix})"
        super().__init__(text)
