"""meta/runtime.yml's action group: module_defaults sets the store and Prometheus once per play."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from tests.fakes.webhook import free_port

ROOT = Path(__file__).resolve().parents[2]
GROUP = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["action_groups"]["depmirror"]


def test_every_plugin_that_reads_the_store_or_prometheus_is_in_the_group() -> None:
    shared = {
        path.stem
        for path in (ROOT / "plugins" / "action").glob("*.py")
        if re.search(r"\*\*(STORE|PROMETHEUS)_ARGS", path.read_text())
    }
    assert shared, "no plugin shares the options: the pattern above is stale"
    assert shared <= set(GROUP), f"missing from action_groups.depmirror: {sorted(shared - set(GROUP))}"
    assert all((ROOT / "plugins" / "modules" / f"{name}.py").exists() for name in GROUP), "a group names no module"


def test_module_defaults_set_prometheus_once_for_the_group(tmp_path: Path) -> None:
    # Nothing listens on the port: the plan's warning names the URL it was given through module_defaults.
    url = f"http://127.0.0.1:{free_port()}"
    playbook = tmp_path / "defaults.yml"
    playbook.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  module_defaults:\n"
        "    group/depmirror.mirroring.depmirror:\n"
        f"      prometheus_url: {url}\n"
        "      prometheus_timeout: 1\n"
        "  tasks:\n"
        "    - name: Plan with Prometheus from module_defaults\n"
        "      depmirror.mirroring.plan:\n"
        f"        graph: {ROOT / 'inventories' / 'example' / 'graph.yml'}\n"
        "      register: planned\n"
        "    - name: Fail unless the plan asked that Prometheus\n"
        "      ansible.builtin.assert:\n"
        f"        that: planned.warnings | select('search', '{url}') | list | length > 0\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPMIRROR_PROMETHEUS")}
    ran = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
        capture_output=True,
        text=True,
        env={**env, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        cwd=ROOT,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stdout[-2000:]
