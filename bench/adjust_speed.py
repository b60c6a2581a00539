"""adjust on the lab through both frontends: first apply and no-op re-apply, the same plan, RUNS times each.

For each run: wipe the lab's depmirror files (tests/integration/playbooks/wipe.yml, not timed), adjust with a
fresh state store (timed: first apply), adjust again (timed: no-op; it must change nothing on any host, or
the run is refused). Ansible is `ansible-playbook playbooks/adjust.yml` with the checkout's ansible.cfg;
pyinfra is `depmirror pyinfra adjust`. Both plan from inventories/example/graph.yml, so every run applies
the same plan. Wall times include each command's own start-up, as a user (or the runner) pays it.

`--ansible-variants` then times Ansible's no-op under cheaper settings, through environment variables only
(playbooks/adjust.yml and the roles are not touched): strategy free, pipelining off (to show what the
checkout's `pipelining = True` buys), fewer forks, and Mitogen's linear strategy when ansible_mitogen is
installed. adjust.yml gathers no facts already, so "facts off" is the baseline.

Writes bench/results/adjust_speed.json: ansible_first_s, ansible_noop_s, pyinfra_first_s, pyinfra_noop_s
(medians), noop_ratio (pyinfra / ansible), every run, and the variants. fault_to_rf_restored_s stays null:
it needs the runner's reconciliation, which this bench does not drive.

Run it under the lab lock, and it leaves the lab down:
`flock /tmp/depmirror-lab.lock .venv/bin/python bench/adjust_speed.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import depmirror_lab as lab
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "adjust_speed.json"
GRAPH = ROOT / "inventories" / "example" / "graph.yml"
LOCK = Path("/tmp/depmirror-lab.lock")
BIN = Path(sys.executable).parent
RUNS = 3
VARIANTS = {
    "strategy_free": {"ANSIBLE_STRATEGY": "free"},
    "pipelining_off": {"ANSIBLE_PIPELINING": "False"},
    "forks_5": {"ANSIBLE_FORKS": "5"},
}


@contextlib.contextmanager
def lab_lock() -> Iterator[None]:
    """`flock LOCK cmd` hands its locked descriptor down: lock that one again (free) rather than open a new
    one, which would wait for ever on our own parent's lock."""
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == str(LOCK):
                fcntl.flock(int(fd), fcntl.LOCK_EX)
                yield
                return
    handle: IO[str]
    with LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ansible_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_NOCOLOR": "1",
        **(extra or {}),
    }


def ansible(playbook: str, inventories: list[Path], extra: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds, and how many tasks changed something on a managed host (localhost's record aside)."""
    argv = [str(BIN / "ansible-playbook"), str(ROOT / playbook)]
    for inventory in inventories:
        argv += ["-i", str(inventory)]
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(extra), cwd=ROOT, timeout=900)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"bench/adjust_speed.py: {playbook} failed (rc {done.returncode}): {done.stderr[-2000:]}")
    report = json.loads(done.stdout[done.stdout.index("{") :])
    changed = sum(s.get("changed", 0) for host, s in report.get("stats", {}).items() if host != "localhost")
    return round(seconds, 2), changed


def pyinfra(paths: lab.LabPaths, source: Path) -> tuple[float, int]:
    argv = [sys.executable, "-m", "depmirror.cli", "pyinfra", "adjust", "-i", str(source), "--json"]
    argv += ["--ssh-key", str(paths.ssh_key), "--known-hosts", str(paths.known_hosts)]
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"bench/adjust_speed.py: depmirror pyinfra adjust failed: {done.stderr[-2000:]}")
    return round(seconds, 2), int(json.loads(done.stdout)["changed"])


def fleet_source(directory: Path, run: str) -> Path:
    source = directory / f"{run}.depmirror.yml"
    store = directory / f"{run}.db"
    source.write_text(
        yaml.safe_dump({"plugin": "depmirror.mirroring.graph", "graph": str(GRAPH), "state_store": str(store)})
    )
    return source


def wipe(paths: lab.LabPaths) -> None:
    ansible("tests/integration/playbooks/wipe.yml", [paths.inventory])


def measure(paths: lab.LabPaths, directory: Path, frontend: str, runs: int) -> list[dict[str, Any]]:
    found = []
    for i in range(runs):
        wipe(paths)
        source = fleet_source(directory, f"{frontend}-{i}")
        if frontend == "ansible":
            first = ansible("playbooks/adjust.yml", [paths.inventory, source])
            noop = ansible("playbooks/adjust.yml", [paths.inventory, source])
        else:
            first, noop = pyinfra(paths, source), pyinfra(paths, source)
        if first[1] == 0 or noop[1] != 0:
            sys.exit(f"bench/adjust_speed.py: {frontend} run {i}: first apply changed {first[1]}, no-op {noop[1]}")
        found.append({"first_s": first[0], "noop_s": noop[0], "first_changed": first[1]})
        print(f"{frontend} run {i + 1}: first {first[0]} s ({first[1]} changed), no-op {noop[0]} s", flush=True)
    return found


def mitogen_variant() -> dict[str, dict[str, str]]:
    """Mitogen's linear strategy, when ansible_mitogen is installed (it is not a dependency of the project)."""
    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or spec.origin is None:
        return {}
    strategies = Path(spec.origin).parent / "plugins" / "strategy"
    return {"mitogen_linear": {"ANSIBLE_STRATEGY_PLUGINS": str(strategies), "ANSIBLE_STRATEGY": "mitogen_linear"}}


def variants(paths: lab.LabPaths, directory: Path, runs: int) -> dict[str, Any]:
    """Ansible's no-op under each variant, on a fleet adjust.yml deployed once with the default settings."""
    wipe(paths)
    source = fleet_source(directory, "variants")
    ansible("playbooks/adjust.yml", [paths.inventory, source])
    found: dict[str, Any] = {}
    for name, env in {"baseline": {}, **VARIANTS, **mitogen_variant()}.items():
        times = []
        for _ in range(runs):
            seconds, changed = ansible("playbooks/adjust.yml", [paths.inventory, source], env)
            if changed:
                sys.exit(f"bench/adjust_speed.py: variant {name} changed {changed} tasks on a no-op")
            times.append(seconds)
        found[name] = {"env": env, "noop_s": statistics.median(times), "runs": times}
        print(f"ansible no-op, {name}: {found[name]['noop_s']} s {times}", flush=True)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help=f"runs per frontend (default {RUNS})")
    parser.add_argument("--ansible-variants", action="store_true", help="also time Ansible's no-op variants")
    parser.add_argument("--variant-runs", type=int, default=2, help="no-op runs per variant (default 2)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/adjust_speed.py: needs root (the lab)")
    if not 1 <= args.runs <= 10 or not 1 <= args.variant_runs <= 10:
        sys.exit("bench/adjust_speed.py: --runs and --variant-runs must be from 1 to 10")
    paths = lab.lab_paths()
    with lab_lock(), tempfile.TemporaryDirectory(prefix="adjust-speed-") as tmp:
        directory = Path(tmp)
        try:
            lab.up(paths)
            runs = {frontend: measure(paths, directory, frontend, args.runs) for frontend in ("ansible", "pyinfra")}
            extra = variants(paths, directory, args.variant_runs) if args.ansible_variants else None
            wipe(paths)
        finally:
            lab.down(paths)

    def median(frontend: str, key: str) -> float:
        return round(statistics.median(r[key] for r in runs[frontend]), 2)

    result = {
        "ansible_first_s": median("ansible", "first_s"),
        "ansible_noop_s": median("ansible", "noop_s"),
        "pyinfra_first_s": median("pyinfra", "first_s"),
        "pyinfra_noop_s": median("pyinfra", "noop_s"),
        "noop_ratio": round(median("pyinfra", "noop_s") / median("ansible", "noop_s"), 3),
        "fault_to_rf_restored_s": None,
        "fault_to_rf_restored_note": "needs the runner's reconciliation (issue 21), not measured here",
        "runs": runs,
        "ansible_variants": extra,
        "graph": str(GRAPH.relative_to(ROOT)),
        "hosts": len(lab.HOSTS),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("runs", "ansible_variants")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
