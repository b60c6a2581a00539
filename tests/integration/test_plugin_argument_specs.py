"""Each action plugin checks its arguments with ARGUMENT_SPEC, while its module file only documents them:
nothing else would notice the two drifting apart, so this holds every spec to its documentation as
`ansible-doc` renders it (doc fragments merged): the same options, types, defaults, choices and elements."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from depmirror.store import EventFilter, open_store

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = sorted(p.stem for p in (ROOT / "plugins" / "action").glob("*.py"))
COMPARED = ("type", "required", "default", "choices", "elements")


def _documented() -> dict[str, dict[str, Any]]:
    names = [f"depmirror.mirroring.{name}" for name in ACTIONS]
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "-t", "module", "--json", *names],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        cwd=ROOT,
    )
    docs = json.loads(shown.stdout)
    return {name.rsplit(".", 1)[1]: docs[name]["doc"]["options"] for name in names}


def _spec(name: str) -> dict[str, Any]:
    # `make setup` links the checkout as .ansible/collections/ansible_collections/depmirror/mirroring; on
    # sys.path that tree imports as plain (namespace) packages, enough to read a class attribute.
    collections = str(ROOT / ".ansible" / "collections")
    if collections not in sys.path:
        sys.path.insert(0, collections)
    module = importlib.import_module(f"ansible_collections.depmirror.mirroring.plugins.action.{name}")
    return dict(module.ActionModule.ARGUMENT_SPEC)


def _essentials(option: dict[str, Any]) -> dict[str, Any]:
    kept = {key: option[key] for key in COMPARED if key in option and option[key] not in (None, False)}
    kept.setdefault("type", "str")
    if kept.get("default") in ([], {}):
        kept.pop("default")  # ansible-doc omits empty defaults
    return kept


@pytest.fixture(scope="module")
def documented() -> dict[str, dict[str, Any]]:
    return _documented()


@pytest.mark.parametrize("name", ACTIONS)
def test_the_action_checks_exactly_what_its_module_documents(name: str, documented: dict[str, Any]) -> None:
    spec, docs = _spec(name), documented[name]
    assert sorted(spec) == sorted(docs), f"{name}: options differ"
    for option in spec:
        assert _essentials(spec[option]) == _essentials(docs[option]), f"{name}.{option}"


def test_a_changed_spec_is_noticed(documented: dict[str, Any]) -> None:
    spec = _spec("plan")
    spec["prometheus_timeout"] = {**spec["prometheus_timeout"], "default": 9.0}
    assert _essentials(spec["prometheus_timeout"]) != _essentials(documented["plan"]["prometheus_timeout"])


def test_module_defaults_set_the_store_once_for_the_group(tmp_path: Path) -> None:
    store = tmp_path / "defaults.db"
    playbook = tmp_path / "defaults.yml"
    playbook.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  module_defaults:\n"
        "    group/depmirror.mirroring.depmirror:\n"
        f"      state_store: {store}\n"
        "  tasks:\n"
        "    - name: Record an event with the store from module_defaults\n"
        "      depmirror.mirroring.rollback_history:\n"
        "        kind: refused\n"
        "        dependency: payments\n"
        "        outcome: refused\n"
        "        reason: set by module_defaults\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DEPMIRROR_STORE"}
    ran = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
        capture_output=True,
        text=True,
        env={**env, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        cwd=ROOT,
    )
    assert ran.returncode == 0, ran.stdout[-2000:]
    with open_store(store, create=False) as opened:
        (event,) = opened.events(EventFilter())
    assert (event.kind, event.reason) == ("refused", "set by module_defaults")
