"""extensions/awx/: what `awx import` reads is in the shape awxkit exports, and everything it names exists.

The shape is awxkit's (`awx export` / `awx import`, ansible/awx awxkit/awxkit/api/pages/api.py): top-level
keys from EXPORTABLE_RESOURCES, every asset with its POST fields, a `natural_key` ({"type", + the keys its page
class's NATURAL_KEY lists}), foreign keys as natural keys, and `related` (credentials as natural keys, the
survey spec as the JSON job_template_survey_spec.md documents). AWX itself cannot run here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from depmirror.runner.actions import ActionRequest

ROOT = Path(__file__).resolve().parents[2]
AWX = ROOT / "extensions" / "awx"
PROJECT = AWX / "project"
FILES = ("credential_types.json", "project.json", "job_templates.json")
EXPORTABLE = {
    "users", "organizations", "teams", "credential_types", "credentials", "notification_templates", "projects",
    "inventory", "inventory_sources", "job_templates", "workflow_job_templates", "execution_environments",
    "applications", "schedules",
}  # fmt: skip
# resource -> (natural key type, the NATURAL_KEY fields of its awxkit page class)
NATURAL_KEYS = {
    "credential_types": ("credential_type", ("name", "kind")),
    "projects": ("project", ("organization", "name")),
    "inventory": ("inventory", ("organization", "name")),
    "inventory_sources": ("inventory_source", ("name", "inventory")),  # ("organization", ...): it has none
    "job_templates": ("job_template", ("organization", "name")),
}
FOREIGN_KEYS = {"organization", "inventory", "project", "source_project", "credential_type"}
SURVEY_TYPES = {"text", "integer", "float", "multiplechoice", "multiselect"}  # job_template_survey_spec.md
# Made by the user (secrets) or built into AWX; docs/awx.md, step 2 names them.
USER_MADE = {("credential", "depmirror store"), ("credential", "depmirror Prometheus")}
USER_MADE |= {("credential", "depmirror runner token"), ("credential", "depmirror VMs")}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((AWX / name).read_text())
    return data


def _assets() -> list[tuple[str, dict[str, Any]]]:
    return [(resource, asset) for name in FILES for resource, items in _load(name).items() for asset in items]


def _key(natural_key: dict[str, Any]) -> tuple[str, str]:
    return natural_key["type"], natural_key.get("name", "")


SHIPPED = {_key(asset["natural_key"]) for _, asset in _assets()}
TEMPLATES = {t["name"]: t for t in _load("job_templates.json")["job_templates"]}


def _read_by_collection(name: str) -> bool:
    """Whether the collection's playbooks, roles or plugins read `name` (a variable or an environment variable)."""
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    places = [*(ROOT / "playbooks").glob("*.yml"), *(ROOT / "roles").rglob("*.yml"), *(ROOT / "roles").rglob("*.j2")]
    places += [*(ROOT / "plugins").rglob("*.py"), *(ROOT / "src" / "depmirror").rglob("*.py")]
    return any(pattern.search(path.read_text()) for path in places)


@pytest.mark.parametrize("name", FILES)
def test_every_file_is_an_awx_export_document(name: str) -> None:
    data = _load(name)
    assert data and set(data) <= EXPORTABLE, f"{name}: {sorted(set(data) - EXPORTABLE)} is no awx export resource"
    for resource, items in data.items():
        kind, fields = NATURAL_KEYS[resource]
        for asset in items:
            key = asset["natural_key"]
            assert key["type"] == kind and set(key) == {"type", *fields}, f"{name}: {asset['name']} natural_key"
            assert key["name"] == asset["name"]
            assert "id" not in asset, "ids differ between AWX installations: natural keys only"
            for field in FOREIGN_KEYS & set(asset):
                assert isinstance(asset[field], dict) and "type" in asset[field], f"{asset['name']}.{field}"


def test_every_foreign_key_and_credential_names_something_shipped_or_made_by_the_user() -> None:
    known = SHIPPED | USER_MADE | {("organization", "Default"), ("credential_type", "Machine")}
    for _, asset in _assets():
        refs = [asset[f] for f in FOREIGN_KEYS & set(asset)]
        refs += list(asset.get("related", {}).get("credentials", []))
        refs += [c["credential_type"] for c in asset.get("related", {}).get("credentials", [])]
        for ref in refs:
            assert _key(ref) in known, f"{asset['name']} names {ref}, which nothing ships or docs/awx.md creates"


def test_the_credentials_a_template_uses_are_one_per_type_and_an_inventory_source_takes_one() -> None:
    for resource, asset in _assets():
        credentials = asset.get("related", {}).get("credentials", [])
        types = [c["credential_type"]["name"] for c in credentials]
        assert len(types) == len(set(types)), f"{asset['name']}: AWX takes one credential per type"
        if resource == "inventory_sources":
            assert len(credentials) <= 1, f"{asset['name']}: an inventory source takes one credential"


def test_credential_types_inject_only_their_fields_into_names_the_collection_reads() -> None:
    for credential_type in _load("credential_types.json")["credential_types"]:
        fields = {f["id"] for f in credential_type["inputs"]["fields"]}
        assert credential_type["kind"] in ("cloud", "net")
        assert set(credential_type["inputs"]["required"]) <= fields
        for target, injected in credential_type["injectors"].items():
            assert target in ("env", "extra_vars", "file")
            for name, template in injected.items():
                used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", template))
                assert used and used <= fields, f"{credential_type['name']}: {name} injects {template}"
                assert name == "PGPASSWORD" or _read_by_collection(name), f"nothing reads {name}"


def test_every_template_runs_a_playbook_of_the_example_project_importing_one_of_the_collection() -> None:
    for template in TEMPLATES.values():
        playbook = PROJECT / template["playbook"]
        assert playbook.is_file(), f"{template['name']}: no {template['playbook']} in the example project"
        (play,) = yaml.safe_load(playbook.read_text())
        imported = play["ansible.builtin.import_playbook"]
        namespace, name, short = imported.split(".")
        assert (namespace, name) == ("depmirror", "mirroring")
        assert (ROOT / "playbooks" / f"{short}.yml").is_file(), f"the collection has no playbook {short}"


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_surveys_have_the_documented_shape_and_ask_for_what_the_playbooks_read(name: str) -> None:
    template = TEMPLATES[name]
    survey = template.get("related", {}).get("survey_spec")
    assert template["survey_enabled"] == (survey is not None)
    if survey is None:
        return
    assert set(survey) == {"name", "description", "spec"} and survey["spec"]
    variables = [q["variable"] for q in survey["spec"]]
    assert len(variables) == len(set(variables))
    for question in survey["spec"]:
        assert question["type"] in SURVEY_TYPES
        assert {"question_name", "question_description", "variable", "required"} <= set(question)
        assert _read_by_collection(question["variable"]), f"{name}: nothing reads {question['variable']}"
        if question["type"] == "multiplechoice":
            assert question["default"] in question["choices"]


@pytest.mark.parametrize(("name", "kind"), [("depmirror rollback", "rollback"), ("depmirror failback", "failback")])
def test_a_runner_launch_answers_every_required_question_and_may_pass_its_other_variables(name: str, kind: str) -> None:
    template = TEMPLATES[name]
    request = ActionRequest(
        action_id="a1",
        kind=kind,  # type: ignore[arg-type]
        dependency="payments-api",
        instance="payments-api@vm-a1",
        trigger={"type": "alert"},
        store_url="postgresql://depmirror@db/depmirror",
    )
    sent = request.extra_vars()
    required = {q["variable"] for q in template["related"]["survey_spec"]["spec"] if q["required"]}
    assert required <= set(sent), f"{name}: the runner does not send {required - set(sent)}"
    assert template["ask_variables_on_launch"], "without it AWX drops depmirror_trigger and depmirror_action_id"


def test_adjust_prompts_for_the_limit_and_check_mode() -> None:
    adjust = TEMPLATES["depmirror adjust"]
    assert adjust["ask_limit_on_launch"] and adjust["ask_job_type_on_launch"]


def test_the_example_project_is_what_awx_syncs() -> None:
    assert (PROJECT / "graph.yml").read_text() == (ROOT / "inventories/example/graph.yml").read_text()
    requirements = yaml.safe_load((PROJECT / "collections" / "requirements.yml").read_text())
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    (collection,) = requirements["collections"]
    assert collection == {"name": "depmirror.mirroring", "version": galaxy["version"]}
    for source in _load("project.json")["inventory_sources"]:
        assert source["source"] == "scm" and (PROJECT / source["source_path"]).is_file()


def _ansible(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPMIRROR_")}
    return subprocess.run(
        [str(Path(sys.executable).parent / tool), *args],
        capture_output=True,
        text=True,
        env={**env, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        cwd=PROJECT,
        timeout=120,
        check=False,
    )


def test_the_inventory_source_gives_the_groups_the_templates_run_on() -> None:
    done = _ansible("ansible-inventory", "-i", "fleet.depmirror.yml", "-i", "monitoring_hosts.yml", "--list")
    assert done.returncode == 0, done.stderr
    groups = json.loads(done.stdout)
    for group in ("depmirror_vms", "depmirror_load_balancers", "zone_zone_a", "depmirror_monitoring"):
        assert groups.get(group, {}).get("hosts"), f"no hosts in {group}"


def test_the_example_playbooks_pass_the_syntax_check() -> None:
    playbooks = sorted(str(p) for p in (PROJECT / "playbooks").glob("*.yml"))
    done = _ansible("ansible-playbook", "--syntax-check", "-i", "fleet.depmirror.yml", *playbooks)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
