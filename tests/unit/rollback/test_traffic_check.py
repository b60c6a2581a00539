"""The last check of a switchover, against real servers on 127.0.0.1: a stdlib HTTP server that answers as
nginx does (X-Depmirror-Upstream), a listening socket, and Debian's redis-server where it is installed."""

from __future__ import annotations

import http.server
import io
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.health_services import REDIS, free_port, need, processes, start_redis

from depmirror.rollback.traffic_check import _read_reply, check_traffic


class _Upstreams:
    """What the fake load balancer says served each request, in turn; `status` for every answer."""

    def __init__(self) -> None:
        self.served: list[str] = ["198.18.0.21:8081"]
        self.status = 200
        self.count = 0


@pytest.fixture
def lb() -> Iterator[tuple[int, _Upstreams]]:
    upstreams = _Upstreams()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served = upstreams.served[upstreams.count % len(upstreams.served)]
            upstreams.count += 1
            self.send_response(upstreams.status)
            self.send_header("X-Depmirror-Upstream", served)
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], upstreams
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_http_passes_when_the_new_primary_serves_and_the_failed_one_never_does(lb: tuple[int, _Upstreams]) -> None:
    port, upstreams = lb
    upstreams.served = ["198.18.0.21:8081", "198.18.0.31:8081"]
    check = check_traffic("http", "127.0.0.1", port, expect="198.18.0.21:8081", forbid="198.18.0.11:8081", requests=4)
    assert check.ok and check.attempts == 1, check
    assert check.served_by == ["198.18.0.21:8081", "198.18.0.31:8081"]
    assert upstreams.count == 4


def test_http_fails_while_the_failed_primary_still_serves_a_request(lb: tuple[int, _Upstreams]) -> None:
    port, upstreams = lb
    # nginx's $upstream_addr lists every server tried: the failed one, then the one that answered.
    upstreams.served = ["198.18.0.21:8081", "198.18.0.11:8081, 198.18.0.21:8081"]
    check = check_traffic(
        "http", "127.0.0.1", port, expect="198.18.0.21:8081", forbid="198.18.0.11:8081", requests=2, deadline_s=0.3
    )
    assert not check.ok and "198.18.0.11:8081 still served a request" in check.detail
    assert check.attempts > 1 and check.seconds < 1.5


def test_http_fails_when_the_new_primary_serves_nothing_or_the_lb_answers_5xx(lb: tuple[int, _Upstreams]) -> None:
    port, upstreams = lb
    upstreams.served = ["198.18.0.31:8081"]
    check = check_traffic("http", "127.0.0.1", port, expect="198.18.0.21:8081", requests=3, deadline_s=0.2)
    assert not check.ok and "198.18.0.21:8081 served none of 3 requests" in check.detail
    upstreams.status = 502
    check = check_traffic("http", "127.0.0.1", port, requests=1, deadline_s=0.2)
    assert not check.ok and "answered 502" in check.detail


def test_tcp_passes_when_the_port_accepts_and_retries_within_the_deadline_when_it_does_not() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        check = check_traffic("tcp", "127.0.0.1", listener.getsockname()[1])
    assert check.ok and check.detail == "accepts connections"
    closed = check_traffic("tcp", "127.0.0.1", free_port(), deadline_s=0.3)
    assert not closed.ok and "ConnectionRefusedError" in closed.detail
    assert 1 < closed.attempts <= 10 and closed.seconds < 1.5


@pytest.mark.services
def test_redis_passes_on_a_primary_and_fails_on_a_replica(tmp_path: Path) -> None:
    need(REDIS)
    with processes(tmp_path) as procs:
        primary_port, replica_port = free_port(), free_port()
        start_redis(procs, "primary", "127.0.0.1", primary_port)
        start_redis(procs, "replica", "127.0.0.1", replica_port)
        with socket.create_connection(("127.0.0.1", replica_port), timeout=2) as sock:
            sock.sendall(
                f"*3\r\n$9\r\nREPLICAOF\r\n$9\r\n127.0.0.1\r\n${len(str(primary_port))}\r\n{primary_port}\r\n".encode()
            )
            assert _read_reply(sock.makefile("rb")) == "OK"
        primary = check_traffic("redis", "127.0.0.1", primary_port)
        replica = check_traffic("redis", "127.0.0.1", replica_port, deadline_s=0.3)
    assert primary.ok and primary.served_by[0].startswith("master offset"), primary
    assert not replica.ok and "does not reach a primary" in replica.detail


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"+PONG\r\n", "PONG"),
        (b":42\r\n", 42),
        (b"$5\r\nhello\r\n", "hello"),
        (b"$-1\r\n", None),
        (b"*-1\r\n", None),
        (
            b"*3\r\n$6\r\nmaster\r\n:1234\r\n*1\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n$4\r\n1234\r\n",
            ["master", 1234, [["127.0.0.1", "6380", "1234"]]],
        ),
    ],
)
def test_redis_replies_are_read_as_values(raw: bytes, value: object) -> None:
    assert _read_reply(io.BytesIO(raw)) == value


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"-READONLY You can't write against a read only replica.\r\n", "redis error: READONLY"),
        (b"", "closed before a reply"),
        (b"HTTP/1.1 400 Bad Request\r\n", "not a redis reply"),
    ],
)
def test_what_is_not_a_redis_reply_is_an_error(raw: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _read_reply(io.BytesIO(raw))
