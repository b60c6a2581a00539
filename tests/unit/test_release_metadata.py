"""One release, one set of numbers: the library's distribution (pyproject.toml), the collection (galaxy.yml,
meta/runtime.yml), the requirements.txt that ties them together, and what the plugin docs promise (issue 18)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
DOCUMENTED = sorted(p for kind in ("modules", "inventory", "filter") for p in (ROOT / "plugins" / kind).glob("*.py"))


def _requirements(path: Path) -> list[Requirement]:
    """The requirement lines of a pip requirements file; options (--find-links) and comments are skipped."""
    found = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            found.append(Requirement(line))
    return found


def _lower_bound(specifiers: SpecifierSet) -> Version:
    (bound,) = [Version(s.version) for s in specifiers if s.operator == ">="]
    return bound


def _documentation(path: Path) -> dict[str, Any]:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "DOCUMENTATION" for t in node.targets):
            assert isinstance(node.value, ast.Constant)
            return yaml.safe_load(node.value.value)
    raise AssertionError(f"{path} has no DOCUMENTATION")


def test_the_library_and_the_collection_share_one_version() -> None:
    assert PYPROJECT["version"] == GALAXY["version"]


def test_requirements_txt_pins_the_library_at_the_collections_version() -> None:
    (library,) = _requirements(ROOT / "requirements.txt")
    assert library.name == PYPROJECT["name"] == "depmirror-mirroring"
    assert str(library.specifier) == f"=={GALAXY['version']}"
    assert "--find-links wheels" in (ROOT / "requirements.txt").read_text().splitlines()


def test_every_other_file_that_names_the_library_pins_the_same_version() -> None:
    # meta/ee-requirements.txt (the execution environment) and the lab's dependency, when they name it.
    for path in [*ROOT.glob("meta/*.txt"), ROOT / "lab" / "pyproject.toml"]:
        if not path.exists():
            continue
        if path.suffix == ".toml":
            lines = tomllib.loads(path.read_text())["project"]["dependencies"]
        else:
            lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
        for line in lines:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue  # a path, a URL or a pip option
            assert requirement.name != "depmirror", f"{path}: `depmirror` on PyPI is not ours: name {PYPROJECT['name']}"
            if requirement.name == PYPROJECT["name"] and requirement.specifier:
                assert str(requirement.specifier) == f"=={GALAXY['version']}", path


def test_requires_ansible_agrees_with_the_ansible_core_pin() -> None:
    (pin,) = [r for r in map(Requirement, PYPROJECT["dependencies"]) if r.name == "ansible-core"]
    requires_ansible = SpecifierSet(yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["requires_ansible"])
    assert _lower_bound(requires_ansible) == _lower_bound(pin.specifier)
    assert _lower_bound(pin.specifier) in requires_ansible


def test_the_plugins_name_the_distribution_they_tell_users_to_install() -> None:
    source = (ROOT / "plugins" / "plugin_utils" / "library_install.py").read_text()
    assert f'DISTRIBUTION = "{PYPROJECT["name"]}"' in source


def test_the_requirements_fragment_names_the_distribution_and_the_python() -> None:
    fragment = (ROOT / "plugins" / "doc_fragments" / "requirements.py").read_text()
    assert PYPROJECT["name"] in fragment
    minimum = _lower_bound(SpecifierSet(PYPROJECT["requires-python"]))
    assert f"Python {minimum.major}.{minimum.minor} or later" in fragment


@pytest.mark.parametrize("path", DOCUMENTED, ids=[f"{p.parent.name}/{p.stem}" for p in DOCUMENTED])
def test_every_plugin_documents_its_requirements(path: Path) -> None:
    fragments = _documentation(path).get("extends_documentation_fragment", [])
    assert [f for f in fragments if f.startswith("depmirror.mirroring.requirements")], path
