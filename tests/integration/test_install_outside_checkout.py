"""The release as a user installs it (issue 18): `make dist`'s collection tarball and wheel, a fresh virtualenv
in a temporary directory with ansible-core only, no ansible.cfg of ours, nothing of the checkout on any path.

Without the library, `ansible-inventory` fails and prints the command that installs it; that command, run as
printed, installs the wheel the collection carries; then the inventory plugin builds the example fleet.
ansible-doc and the playbook's syntax check need no library. PyPI must be reachable (pip's cache makes the
virtualenv take about 25 s); each step has a timeout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.xdist_group("install_outside_checkout")]

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
(ANSIBLE_CORE,) = [d for d in PYPROJECT["dependencies"] if d.startswith("ansible-core")]
PLUGINS = {
    kind: sorted(f"depmirror.mirroring.{p.stem}" for p in (ROOT / "plugins" / folder).glob("*.py"))
    for kind, folder in (("module", "modules"), ("inventory", "inventory"), ("filter", "filter"))
}
INSTALL_HINT = re.compile(r"\(fix: (\S+) -m pip install -r (\S+/requirements\.txt)\)")


@dataclass(frozen=True)
class User:
    home: Path  # the working directory: no ansible.cfg here, none of the checkout
    venv: Path
    collection: Path  # where ansible-galaxy installed depmirror.mirroring
    source: Path  # the example fleet's inventory source
    env: dict[str, str]

    def run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        program = argv[0] if os.path.isabs(argv[0]) else str(self.venv / "bin" / argv[0])
        command = [program, *argv[1:]]
        return subprocess.run(
            command, cwd=self.home, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )


def _checked(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result


# Session scope: xdist may run other modules' tests between these on the same worker, which would tear a module
# fixture down and build the release and the virtualenv again.
@pytest.fixture(scope="session")
def user(tmp_path_factory: pytest.TempPathFactory) -> User:
    home = tmp_path_factory.mktemp("user")
    dist = home / "dist"
    _checked(
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "dist.sh"), str(dist)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    )
    (tarball,) = dist.glob("depmirror-mirroring-*.tar.gz")

    venv = home / "venv"
    _checked(
        subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=120, check=False
        )
    )
    empty_cfg = home / "empty.cfg"
    empty_cfg.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        PATH=f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
        ANSIBLE_CONFIG=str(empty_cfg),
        ANSIBLE_COLLECTIONS_PATH=str(home / "collections"),
        ANSIBLE_HOME=str(home / "ansible-home"),
        ANSIBLE_NOCOLOR="1",
    )
    user = User(home, venv, home / "collections/ansible_collections/depmirror/mirroring", home / "inventory", env)
    _checked(user.run("python", "-m", "pip", "install", "-q", ANSIBLE_CORE, timeout=300))
    _checked(user.run("ansible-galaxy", "collection", "install", str(tarball), "-p", str(home / "collections")))

    inventory = home / "inventory"
    inventory.mkdir()
    for name in ("graph.yml", "fleet.depmirror.yml"):  # the plugin takes files ending in .depmirror.yml
        shutil.copy(ROOT / "inventories" / "example" / name, inventory / name)
    return User(home, venv, user.collection, inventory / "fleet.depmirror.yml", env)


def test_ansible_doc_documents_every_plugin_with_its_requirements(user: User) -> None:
    for kind, names in PLUGINS.items():
        docs = json.loads(_checked(user.run("ansible-doc", "-t", kind, "--json", *names)).stdout)
        assert sorted(docs) == names
        for name, doc in docs.items():
            requirements = " ".join(doc["doc"].get("requirements", []))
            expected = "nginx" if name.endswith(".nginx_release") else PYPROJECT["name"]
            assert expected in requirements, f"{name}: requirements {requirements!r}"


def test_the_adjust_playbook_is_addressable_by_fqcn(user: User) -> None:
    result = _checked(user.run("ansible-playbook", "depmirror.mirroring.adjust", "--syntax-check"))
    assert f"playbook: {user.collection}/playbooks/adjust.yml" in result.stdout  # the installed one


def test_the_inventory_fails_without_the_library_and_works_after_the_printed_fix(user: User) -> None:
    missing = user.run("python", "-c", "import depmirror")
    assert missing.returncode != 0, "the library must not be importable yet"

    failed = user.run("ansible-inventory", "-i", str(user.source), "--graph")
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0, output
    assert "Traceback" not in output
    assert f"{user.source}: plugin depmirror.mirroring.graph" in output
    hint = INSTALL_HINT.search(output)
    assert hint, output
    python, requirements = hint.groups()
    assert Path(python).parent == user.venv / "bin", "the Python that runs Ansible (python or python3.11)"
    assert requirements == str(user.collection / "requirements.txt")

    fixed = _checked(user.run(python, "-m", "pip", "install", "-r", requirements, timeout=300))  # as printed
    assert f"wheels/depmirror_mirroring-{PYPROJECT['version']}-py3-none-any.whl" in fixed.stdout, fixed.stdout
    where = _checked(user.run("python", "-c", "import depmirror; print(depmirror.__file__)")).stdout
    assert where.startswith(str(user.venv)), where

    shown = _checked(user.run("ansible-inventory", "-i", str(user.source), "--graph"))
    members: dict[str, list[str]] = {}
    group = ""
    for line in shown.stdout.splitlines():
        name = line.strip(" |-")
        if name.startswith("@"):
            group = name.strip("@:")
            members[group] = []
        elif group:
            members[group].append(name)
    for expected in ("depmirror_vms", "depmirror_load_balancers", "primaries"):
        assert members.get(expected), f"group {expected} is empty:\n{shown.stdout}"
    assert [g for g in members if g.startswith("zone_") and members[g]], shown.stdout
    assert [g for g in members if g.startswith("dep_") and members[g]], shown.stdout


def test_the_installed_collection_renders_the_probe_job_that_discovers_from_the_runner(user: User) -> None:
    # Last in the file: it installs the library, which the test above must first find missing. Installed
    # as the collection's requirements install it (the test above shows the printed fix does).
    requirements = str(user.collection / "requirements.txt")
    _checked(user.run("python", "-m", "pip", "install", "-q", "-r", requirements, timeout=300))
    rendered = user.home / "scrape_configs.json"
    play = user.home / "runner-targets.yml"
    play.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - ansible.builtin.copy:\n"
        "        dest: " + str(rendered) + "\n"
        "        mode: '0600'\n"
        "        content: \"{{ (graph | depmirror.mirroring.monitoring_config(instances=[], targets_file='/t.json',"
        " interval='1s', runner_targets_url=url, runner_targets_token_file='/etc/prometheus/read.token'))"
        '.scrape_configs | to_json }}"\n'
    )
    graph = str(user.source.parent / "graph.yml")

    def render(url: str) -> subprocess.CompletedProcess[str]:
        # The module runs with the user's venv, as a controller-local task would (no interpreter discovery).
        python = str(user.venv / "bin" / "python")
        extra = json.dumps({"graph": graph, "url": url, "ansible_python_interpreter": python})
        return user.run("ansible-playbook", "-i", "localhost,", "-c", "local", str(play), "-e", extra)

    _checked(render("https://runner.example:9095/api/v1/targets"))
    (probe,) = [job for job in json.loads(rendered.read_text()) if "metrics_path" in job]
    assert "file_sd_configs" not in probe
    assert probe["http_sd_configs"] == [
        {
            "refresh_interval": "1s",
            "url": "https://runner.example:9095/api/v1/targets",
            "authorization": {"type": "Bearer", "credentials_file": "/etc/prometheus/read.token"},
        }
    ]
    # Hostile: a URL that would add a job to prometheus.yml is refused, naming the variable, and nothing written.
    rendered.unlink()
    refused = render("https://runner.example/x\n- job_name: injected")
    assert refused.returncode != 0 and "runner_targets_url" in refused.stdout + refused.stderr
    assert not rendered.exists()
