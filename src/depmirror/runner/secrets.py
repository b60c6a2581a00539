"""Keeping the runner's secrets (webhook token or password, AWX token) out of logs, children and /proc."""

from __future__ import annotations

import ctypes
import logging
import os

# Shorter secrets can be guessed online: Alertmanager retries, and nothing rate-limits a 401.
MIN_SECRET_BYTES = 16
REDACTED = "<redacted>"


def scrub_environment(names: tuple[str, ...]) -> None:
    """Remove the variables from the environment and blank their bytes in the process's memory.

    os.environ.pop() unsets the variable for children, but /proc/<pid>/environ reads the block the kernel
    copied in at exec time, which unsetenv() leaves as it was; so the value is overwritten in place first."""
    wanted = {name.encode() + b"=" for name in names if name in os.environ}
    if wanted:
        _blank_initial_environment(wanted)
    for name in names:
        os.environ.pop(name, None)


def _blank_initial_environment(prefixes: set[bytes]) -> None:
    try:
        libc = ctypes.CDLL(None)
        environ = ctypes.POINTER(ctypes.c_void_p).in_dll(libc, "environ")
    except (OSError, ValueError):  # not glibc-like: unsetenv alone is what is left
        return
    index = 0
    while environ[index]:
        address = environ[index]
        entry = ctypes.string_at(address)
        for prefix in prefixes:
            if entry.startswith(prefix):
                ctypes.memset(address + len(prefix), ord("x"), len(entry) - len(prefix))
        index += 1


class RedactingFilter(logging.Filter):
    """Replaces every secret in a record's rendered text (message, arguments, traceback) before it is written.

    aiohttp's own error lines quote request headers, so filtering depmirror's messages alone is not enough:
    this sits on the handlers, where every logger's records pass."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        redacted = self._redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True

    def _redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


def install_redaction(secrets: tuple[str, ...]) -> None:
    redacting = RedactingFilter(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redacting)
