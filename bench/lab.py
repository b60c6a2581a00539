"""How long the lab takes to come up (cold, with the image build, and warm) and to go down.

Runs `depmirror lab` as a user would: `down --image` (so the cold start builds the image from a
debootstrap rootfs), `up` (cold), a check that Ansible reaches every host over SSH and sees systemd,
`down`, then WARM_RUNS x (`up`, `down`). Before and after, `ip netns list`, `podman ps -a`, ip_forward
and the firewall rules must match: the lab leaves nothing behind.

Writes bench/results/lab.json: up_s_cold, up_s_warm (median), down_s (median), and every run.
`--warm-only` keeps the existing image and measures only warm starts (up_s_cold is then null).
Needs root. Refuses to run while a lab is up, as it would tear that lab down.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import depmirror_lab as lab

WARM_RUNS = 3
RESULTS = Path(__file__).parent / "results" / "lab.json"
DEPMIRROR = [sys.executable, "-m", "depmirror.cli"]
ANSIBLE = Path(sys.executable).parent / "ansible"


def _out(argv: list[str], env: dict[str, str] | None = None) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, env=env, timeout=120).stdout


def machine(paths: lab.LabPaths) -> dict[str, Any]:
    env = dict(os.environ, CONTAINERS_CONF=str(paths.containers_conf))
    firewall = _out(["iptables-save"]) if shutil.which("iptables-save") else ""
    return {
        "ip netns list": sorted(_out(["ip", "netns", "list"]).splitlines()),
        "podman ps -a": sorted(_out(["podman", "ps", "-a", "--format", "{{.ID}} {{.Names}}"], env).splitlines()),
        "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
        "iptables": [re.sub(r"\[\d+:\d+\]", "", x) for x in firewall.splitlines() if not x.startswith("#")],
    }


def timed(*args: str) -> float:
    started = time.monotonic()
    done = subprocess.run([*DEPMIRROR, "lab", *args], capture_output=True, text=True, timeout=600)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"bench/lab.py: `depmirror lab {' '.join(args)}` failed: {done.stderr.strip()}")
    return round(seconds, 2)


def check(paths: lab.LabPaths) -> None:
    """Ansible over SSH reaches every host, and each one runs systemd."""
    with tempfile.TemporaryDirectory() as tree:
        subprocess.run(
            [str(ANSIBLE), "-i", str(paths.inventory), "all", "-m", "ansible.builtin.setup",
             "-a", "filter=ansible_service_mgr", "-t", tree, "-f", "20"],
            cwd=paths.root, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        seen = {p.name: json.loads(p.read_text()).get("ansible_facts", {}) for p in Path(tree).iterdir()}
    managers = {name: facts.get("ansible_service_mgr") for name, facts in seen.items()}
    if managers != {h.name: "systemd" for h in lab.HOSTS}:
        sys.exit(f"bench/lab.py: not every host answered with systemd: {managers}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-only", action="store_true", help="keep the image; skip the cold start")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/lab.py: needs root (the lab makes namespaces and rootful containers)")
    paths = lab.lab_paths()
    if any(status.container != "missing" for status in lab.status(paths)):
        sys.exit("bench/lab.py: a lab is up; take it down first (depmirror lab down)")

    before = machine(paths)
    cold = None
    if not args.warm_only:
        timed("down", "--image")
        cold = timed("up")
        check(paths)
        timed("down")
    ups, downs = [], []
    for _ in range(WARM_RUNS):
        ups.append(timed("up"))
        check(paths)
        downs.append(timed("down"))
    after = machine(paths)
    if after != before:
        sys.exit(f"bench/lab.py: the machine changed: before {before}, after {after}")

    result = {
        "up_s_cold": cold,
        "up_s_warm": statistics.median(ups),
        "down_s": statistics.median(downs),
        "warm_runs": ups,
        "down_runs": downs,
        "hosts": len(lab.HOSTS),
        "machine_unchanged": True,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    cold_text = f"{cold:.1f} s (image build included)" if cold is not None else "skipped"
    print(f"lab up cold:  {cold_text}")
    print(f"lab up warm:  {result['up_s_warm']:.1f} s (median of {WARM_RUNS}: {ups})")
    print(f"lab down:     {result['down_s']:.1f} s (median of {WARM_RUNS}: {downs})")
    print(f"machine unchanged (netns, podman ps -a, ip_forward, iptables); wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
