"""Warm SSH sessions to the load balancers and VMs (paramiko), so a switchover pays no handshake.

Host keys are checked against `known_hosts` (never added on the fly); a broken session is reopened once.
"""

from __future__ import annotations

import json
import shlex
import threading
from dataclasses import dataclass
from typing import Any

import paramiko

from depmirror.errors import DepmirrorError

# Appended to the collection's nginx_swap.py: read the arguments as JSON on stdin, answer JSON on stdout.
_SWAP_DRIVER = """

def _depmirror_fast_path():
    import json, subprocess, sys

    def run(argv):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return done.returncode, done.stdout, done.stderr

    try:
        print(json.dumps({"ok": True, "result": swap_release(json.load(sys.stdin), run)}))
    except SwapError as error:
        print(json.dumps({"ok": False, "msg": error.msg, "result": error.result}))


_depmirror_fast_path()
"""


class RemoteError(DepmirrorError):
    """An SSH session or a remote command failed."""


@dataclass(frozen=True, slots=True)
class SshOptions:
    user: str = "root"
    key_file: str | None = None
    known_hosts: str | None = None
    port: int = 22
    connect_timeout_s: float = 2.0
    become: bool = False  # prefix remote commands with `sudo -n` (a non-root user with passwordless sudo)


class Sessions:
    """One kept-open SSH connection per address."""

    def __init__(self, options: SshOptions) -> None:
        self.options = options
        self._clients: dict[str, paramiko.SSHClient] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def _connect(self, address: str) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        if self.options.known_hosts:
            client.load_host_keys(self.options.known_hosts)
        else:
            client.load_system_host_keys()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                address,
                port=self.options.port,
                username=self.options.user,
                key_filename=self.options.key_file,
                timeout=self.options.connect_timeout_s,
                banner_timeout=self.options.connect_timeout_s,
                auth_timeout=self.options.connect_timeout_s,
                allow_agent=False,
                look_for_keys=False,
            )
        except (OSError, paramiko.SSHException) as error:
            client.close()
            raise RemoteError(f"cannot open SSH to {self.options.user}@{address}: {error}") from error
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)
        return client

    def _client(self, address: str, fresh: bool = False) -> paramiko.SSHClient:
        # One lock per address: a connect to a dead host must not hold up the load balancers.
        with self._lock:
            lock = self._locks.setdefault(address, threading.Lock())
        with lock:
            client = self._clients.get(address)
            transport = client.get_transport() if client else None
            if fresh or client is None or transport is None or not transport.is_active():
                if client is not None:
                    client.close()
                client = self._connect(address)
                self._clients[address] = client
            return client

    def warm(self, address: str) -> None:
        self._client(address)

    def run(self, address: str, command: str, stdin: str = "", timeout_s: float = 10.0) -> tuple[int, str, str]:
        """Run once; only a kept connection that turns out dead before the command starts is reopened.

        A failure after the command started (a read timeout, a dropped connection) is not retried: the
        command may have done its work (`pg_promote()`, a fence, an nginx swap), and running it a second
        time, or reporting a promotion that happened as failed, is worse than an error that says so.
        """
        if self.options.become:
            command = f"sudo -n sh -c {shlex.quote(command)}"
        name = command.split()[0]
        for attempt in (1, 2):
            try:
                client = self._client(address, fresh=attempt == 2)
                channel_in, channel_out, channel_err = client.exec_command(command, timeout=timeout_s)
            except RemoteError:
                raise
            except (OSError, paramiko.SSHException, EOFError) as error:
                if attempt == 2:
                    raise RemoteError(f"{name} on {address} could not start: {error}") from error
                continue
            try:
                if stdin:
                    channel_in.write(stdin)
                channel_in.channel.shutdown_write()
                out = channel_out.read().decode()
                err = channel_err.read().decode()
                return channel_out.channel.recv_exit_status(), out, err
            except (OSError, paramiko.SSHException, EOFError) as error:
                channel_out.channel.close()
                reason = str(error) or type(error).__name__
                raise RemoteError(
                    f"{name} on {address} started but did not finish within {timeout_s:g} s ({reason});"
                    " it may have taken effect, so it is not run again"
                ) from error
        raise AssertionError("unreachable")

    def swap_release(self, address: str, swap_source: str, params: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """nginx_swap.swap_release on the LB; RemoteError with nginx's words when it refused or failed."""
        program = swap_source + _SWAP_DRIVER
        rc, out, err = self.run(address, f"python3 -c {shlex.quote(program)}", json.dumps(params), timeout_s)
        try:
            answer = json.loads(out.strip().splitlines()[-1])
        except (IndexError, ValueError) as error:
            raise RemoteError(f"the nginx swap on {address} answered no result (rc {rc}): {err.strip()}") from error
        if not answer["ok"]:
            raise RemoteError(f"{address}: {answer['msg']}")
        result: dict[str, Any] = answer["result"]
        return result

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
