"""Is traffic through the load balancer served by the right instance? The last check of a switchover.

HTTP answers carry nginx's `X-Depmirror-Upstream` header (the instance that served); Redis must answer
PING and say `master` to ROLE; other TCP dependencies must accept a connection. Every check is bounded
in attempts and time: nginx serves a reloaded configuration within milliseconds, so a few tries suffice.
"""

from __future__ import annotations

import http.client
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TrafficCheck:
    ok: bool
    kind: str
    address: str
    port: int
    attempts: int
    seconds: float
    served_by: list[str] = field(default_factory=list)
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_traffic(
    kind: str,
    address: str,
    port: int,
    *,
    expect: str | None = None,
    forbid: str | None = None,
    requests: int = 10,
    deadline_s: float = 3.0,
    timeout_s: float = 1.0,
) -> TrafficCheck:
    """`expect`/`forbid`: `address:port` of the instance that must serve / must never serve (HTTP only)."""
    started = time.monotonic()
    check = TrafficCheck(False, kind, address, port, 0, 0.0)
    while time.monotonic() - started < deadline_s:
        check.attempts += 1
        try:
            if kind == "http":
                _http_round(check, address, port, expect, forbid, requests, timeout_s)
            elif kind == "redis":
                _redis_round(check, address, port, timeout_s)
            else:
                with socket.create_connection((address, port), timeout=timeout_s):
                    check.ok, check.detail = True, "accepts connections"
        except (OSError, http.client.HTTPException, ValueError) as error:
            check.ok, check.detail = False, f"{type(error).__name__}: {error}"
        if check.ok:
            break
        time.sleep(0.05)
    check.seconds = round(time.monotonic() - started, 3)
    return check


def _http_round(
    check: TrafficCheck,
    address: str,
    port: int,
    expect: str | None,
    forbid: str | None,
    requests: int,
    timeout_s: float,
) -> None:
    served: list[str] = []
    for _ in range(requests):
        connection = http.client.HTTPConnection(address, port, timeout=timeout_s)
        try:
            connection.request("GET", "/", headers={"Connection": "close"})
            response = connection.getresponse()
            response.read()
            if response.status >= 500:
                raise ValueError(f"the load balancer answered {response.status}")
            served.append(response.getheader("X-Depmirror-Upstream") or "")
        finally:
            connection.close()
    check.served_by = sorted(set(served))
    if forbid is not None and any(forbid in s for s in served):
        check.ok, check.detail = False, f"{forbid} still served a request ({check.served_by})"
    elif expect is not None and not any(expect in s for s in served):
        check.ok, check.detail = False, f"{expect} served none of {requests} requests ({check.served_by})"
    else:
        check.ok, check.detail = True, f"{requests} requests answered by {', '.join(check.served_by)}"


def _redis_round(check: TrafficCheck, address: str, port: int, timeout_s: float) -> None:
    with socket.create_connection((address, port), timeout=timeout_s) as sock:
        pong = _redis(sock, "PING")
        role = _redis(sock, "ROLE")
    if pong != "PONG":
        raise ValueError(f"PING answered {pong!r}")
    if not isinstance(role, list) or not role or role[0] != "master":
        raise ValueError(f"ROLE answered {role!r}: the load balancer does not reach a primary")
    check.ok, check.detail = True, f"PING answered PONG, ROLE {role[0]} with {len(role[2])} replica(s)"
    check.served_by = [f"master offset {role[1]}"]


def _redis(sock: socket.socket, *args: str) -> Any:
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    sock.sendall(payload.encode())
    return _read_reply(sock.makefile("rb"))


def _read_reply(stream: Any) -> Any:
    line = stream.readline()
    if not line:
        raise ValueError("the connection closed before a reply")
    kind, rest = line[:1], line[1:].rstrip(b"\r\n").decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise ValueError(f"redis error: {rest}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else stream.read(size + 2)[:-2].decode()
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [_read_reply(stream) for _ in range(count)]
    raise ValueError(f"not a redis reply: {line!r}")
