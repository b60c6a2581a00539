"""adjust on the lab through both frontends: first apply and no-op re-apply, the same plan, RUNS times each.

For each run: wipe the lab's depmirror files (tests/integration/playbooks/wipe.yml, not timed), adjust with a
fresh state store (timed: first apply), adjust again (timed: no-op; it must change nothing on any host, or
the run is refused). Ansible is `ansible-playbook playbooks/adjust.yml` with the checkout's ansible.cfg;
pyinfra is `depmirror pyinfra adjust`. Both plan from inventories/example/graph.yml, so every run applies
the same plan. Wall times include each command's own start-up, as a user (or the runner) pays it.

`--ansible-variants` then times Ansible's first apply and no-op under each variant (VARIANTS), each on a wiped
lab with a fresh store: first what each change of issue 21's cheaper adjust bought, in the order they were
made (the seed's playbook and roles from git BEFORE_REF; the role's per-kind steps included, still linear;
the free strategy; today's adjust.yml adds the converged check and is the main runs' figure), then settings
on top of today's playbook (pipelining off, SSH without compression, fewer forks, and Mitogen's strategies
with `--mitogen DIR`, an unpacked Mitogen release, which the project does not depend on). It also times the
floor: an empty play, and one module per host, over the same hosts. adjust.yml gathers no facts, so "facts
off" is every variant's baseline. bench/results/adjust_speed_variants.json is such a run, kept beside the main
file (a run without the option writes `ansible_variants: null` there).

Writes bench/results/adjust_speed.json: ansible_first_s, ansible_noop_s, pyinfra_first_s, pyinfra_noop_s
(medians), noop_ratio (pyinfra / ansible), every run, and the variants; then fault_to_rf_restored_s: a primary
killed, the runner's switchover and reconciliation (pyinfra) bring the RF back (bench/_rf_restored.py).

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
import shutil
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

from _rf_restored import measure as measure_rf_restored  # bench/ is this script's directory

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "adjust_speed.json"
GRAPH = ROOT / "inventories" / "example" / "graph.yml"
LOCK = Path("/tmp/depmirror-lab.lock")
BIN = Path(sys.executable).parent
RUNS = 3
BEFORE_REF = "9267a6f"  # the last commit before issue 21's cheaper adjust: its playbooks/ and roles/ are "seed"
# Each variant: `tree` (a git ref for playbooks/ and roles/; plugins stay the checkout's), `extra` (extra vars,
# see playbooks/adjust.yml) and `env`. The first three are issue 21's changes one by one.
VARIANTS: dict[str, dict[str, Any]] = {
    "seed": {"tree": BEFORE_REF},
    "included_linear": {"extra": {"depmirror_adjust_strategy": "linear", "depmirror_adjust_full": True}},
    "included_free": {"extra": {"depmirror_adjust_full": True}},
    "pipelining_off": {"env": {"ANSIBLE_PIPELINING": "False"}},
    "ssh_no_compression": {
        "env": {"ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=60s -o ServerAliveInterval=1"}
    },
    "forks_5": {"env": {"ANSIBLE_FORKS": "5"}},
}
FLOOR = {
    "empty_play": [],
    "one_module_per_host": [{"name": "Ping", "ansible.builtin.ping": {}}],
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


def ansible(
    playbook: str | Path,
    inventories: list[Path],
    extra: dict[str, str] | None = None,
    extra_vars: dict[str, Any] | None = None,
) -> tuple[float, int]:
    """Wall seconds, and how many tasks changed something on a managed host (localhost's record aside)."""
    argv = [str(BIN / "ansible-playbook"), str(ROOT / playbook)]
    for inventory in inventories:
        argv += ["-i", str(inventory)]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
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


def mitogen_variants(unpacked: Path | None) -> dict[str, dict[str, Any]]:
    """Mitogen's strategies, from an unpacked release (--mitogen) or an installed ansible_mitogen (the project
    does not depend on it). The plan and record plays (run_once) take mitogen_linear, the VMs' mitogen_free."""
    if unpacked is None:
        spec = importlib.util.find_spec("ansible_mitogen")
        if spec is None or spec.origin is None:
            return {}
        unpacked = Path(spec.origin).parents[1]
    strategies = unpacked / "ansible_mitogen" / "plugins" / "strategy"
    if not (strategies / "mitogen_free.py").is_file():
        sys.exit(f"bench/adjust_speed.py: --mitogen {unpacked}: no ansible_mitogen/plugins/strategy/mitogen_free.py")
    env = {"ANSIBLE_STRATEGY_PLUGINS": str(strategies), "ANSIBLE_STRATEGY": "mitogen_linear"}
    return {"mitogen_free": {"env": env, "extra": {"depmirror_adjust_strategy": "mitogen_free"}}}


def tree_at(ref: str, directory: Path) -> tuple[Path, str]:
    """The collection with playbooks/ and roles/ as they were at `ref`: its adjust.yml and a collections path."""
    collection = directory / "ansible_collections" / "depmirror" / "mirroring"
    collection.mkdir(parents=True)
    for part in ("galaxy.yml", "meta", "plugins"):
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, collection / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, collection / part)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "playbooks", "roles"], capture_output=True, check=True, timeout=60
    )
    subprocess.run(["tar", "-x", "-C", str(collection)], input=archive.stdout, check=True, timeout=60)
    return collection / "playbooks" / "adjust.yml", f"{directory}:{ROOT / '.ansible' / 'collections'}"


def variants(paths: lab.LabPaths, directory: Path, runs: int, mitogen: Path | None) -> dict[str, Any]:
    """First apply and no-op of adjust.yml under each variant, each run on a wiped lab with a fresh store."""
    found: dict[str, Any] = {}
    for name, spec in {**VARIANTS, **mitogen_variants(mitogen)}.items():
        playbook: str | Path = "playbooks/adjust.yml"
        env = dict(spec.get("env", {}))
        if "tree" in spec:
            playbook, env["ANSIBLE_COLLECTIONS_PATH"] = tree_at(spec["tree"], directory / f"tree-{name}")
        firsts, noops = [], []
        for i in range(runs):
            wipe(paths)
            source = fleet_source(directory, f"variant-{name}-{i}")
            first = ansible(playbook, [paths.inventory, source], env, spec.get("extra"))
            noop = ansible(playbook, [paths.inventory, source], env, spec.get("extra"))
            if first[1] == 0 or noop[1] != 0:
                sys.exit(f"bench/adjust_speed.py: variant {name}: first apply changed {first[1]}, no-op {noop[1]}")
            firsts.append(first[0])
            noops.append(noop[0])
        found[name] = {
            **{k: v for k, v in spec.items() if k != "tree"},
            **({"tree": spec["tree"]} if "tree" in spec else {}),
            "first_s": statistics.median(firsts),
            "noop_s": statistics.median(noops),
            "first_runs": firsts,
            "noop_runs": noops,
        }
        print(f"ansible {name}: first {found[name]['first_s']} s, no-op {found[name]['noop_s']} s", flush=True)
    return found


def floor(paths: lab.LabPaths, directory: Path, source: Path) -> dict[str, float]:
    """What any playbook over the fleet's hosts costs here: ansible-playbook's start, the inventory plugin, and
    the SSH connections (the second play: one module per host, as root, as adjust's VM plays run)."""
    found = {}
    for name, tasks in FLOOR.items():
        book = directory / f"floor-{name}.yml"
        play = {"name": name, "hosts": "depmirror_vms:depmirror_load_balancers", "gather_facts": False}
        book.write_text(yaml.safe_dump([{**play, "become": True, "tasks": tasks}]))
        found[name] = statistics.median(ansible(book, [paths.inventory, source])[0] for _ in range(3))
        print(f"ansible floor, {name}: {found[name]} s", flush=True)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help=f"runs per frontend (default {RUNS})")
    parser.add_argument("--ansible-variants", action="store_true", help="also time Ansible's no-op variants")
    parser.add_argument("--variant-runs", type=int, default=1, help="runs per variant (default 1)")
    parser.add_argument("--mitogen", type=Path, help="an unpacked Mitogen release, for the mitogen_free variant")
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
            extra = variants(paths, directory, args.variant_runs, args.mitogen) if args.ansible_variants else None
            lowest = floor(paths, directory, fleet_source(directory, "floor")) if args.ansible_variants else None
            restored = measure_rf_restored(paths, directory)
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
        **restored,  # fault_to_rf_restored_s (pyinfra frontend), and its run
        "runs": runs,
        "ansible_variants": extra,
        "ansible_floor": lowest,
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
