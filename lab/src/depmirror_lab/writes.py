"""Redis writes through a load balancer that count only what a replica acknowledged (`WAIT 1`): the check
that a switchover loses no acknowledged write (tests/e2e/test_zone_outage.py, bench/zone_outage.py)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import redis


@dataclass
class AckedWrites:
    """SET + `WAIT 1` through the LB, one after another, bounded in count and time; a key is kept only once
    a replica has it. Writes that fail while the primary is gone are expected; lost acknowledged ones not."""

    address: str
    port: int
    tag: str
    max_writes: int = 20_000
    max_seconds: float = 120.0
    acked: list[str] = field(default_factory=list)
    failed: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> AckedWrites:
        self._thread = threading.Thread(target=self._run, name=f"redis-writes-{self.port}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        for number in range(self.max_writes):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            key = f"depmirror-bench-{self.tag}-{number}"
            try:
                client = redis.Redis(self.address, self.port, socket_timeout=2, socket_connect_timeout=2)
                client.set(key, str(number))
                if int(client.execute_command("WAIT", 1, 1000)) >= 1:
                    self.acked.append(key)
                else:
                    self.failed += 1
                client.close()
            except redis.RedisError:
                self.failed += 1
            time.sleep(0.02)

    def lost(self) -> list[str]:
        """Acknowledged keys the primary behind the LB does not have (read in pipelines of 500)."""
        client = redis.Redis(self.address, self.port, socket_timeout=5)
        missing: list[str] = []
        for start in range(0, len(self.acked), 500):
            keys = self.acked[start : start + 500]
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.exists(key)
            missing += [key for key, found in zip(keys, pipe.execute(), strict=True) if not found]
        client.close()
        return missing
