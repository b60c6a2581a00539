"""How a lab host looks from the controller's side, as a user would see it when connecting to sshd."""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Iterable

from depmirror_lab.shape import BRIDGE, LabHost
from depmirror_lab.system import LabError

OK = "ok"
REFUSED = "refused"  # the host is up but nothing listens: a stopped VM whose address still answers
HUNG = "timed out"  # the connection opens but nothing answers: a paused, hung VM
UNREACHABLE = "unreachable"  # nothing answers at all: the host or its zone is cut off


def probe_ssh(address: str, timeout: float = 1.0, port: int = 22) -> str:
    """Classify sshd at address: ok (banner read), refused, timed out (no banner) or unreachable.

    The socket is bound to the lab bridge, so with the lab down the probe fails here instead of
    following the default route out of the machine.
    """
    connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        try:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, BRIDGE.encode())
        except OSError as error:
            if error.errno == errno.ENODEV:
                return UNREACHABLE
            raise LabError(f"cannot bind a probe to {BRIDGE}: {error} (fix: run as root)") from error
        connection.settimeout(timeout)
        try:
            connection.connect((address, port))
        except ConnectionRefusedError:
            return REFUSED
        except TimeoutError:
            return UNREACHABLE
        except OSError as error:
            if error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN):
                return UNREACHABLE
            raise
        try:
            banner = connection.recv(64)
        except TimeoutError:
            return HUNG
        return OK if banner.startswith(b"SSH-") else HUNG
    finally:
        connection.close()


def wait_ssh(hosts: Iterable[LabHost], timeout: float = 60.0) -> None:
    """Wait until every host's sshd sends its banner; LabError naming the laggards after timeout."""
    pending = {host.name: host for host in hosts}
    deadline = time.monotonic() + timeout
    while pending:
        for name, host in list(pending.items()):
            if probe_ssh(host.address, timeout=0.5) == OK:
                del pending[name]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise LabError(
                f"sshd did not answer within {timeout:.0f} s on {', '.join(sorted(pending))} "
                "(see `podman logs NAME` and `depmirror lab status`)"
            )
        time.sleep(0.1)
