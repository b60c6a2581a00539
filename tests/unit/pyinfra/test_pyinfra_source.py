"""The fleet file the pyinfra frontend reads: the inventory plugin's `*.depmirror.yml`, hostile values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from depmirror.errors import ConfigError
from depmirror.frontends.pyinfra.source import read_source


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.depmirror.yml"
    path.write_text(text)
    return path


def test_paths_are_taken_from_the_file_s_directory_as_the_plugin_does(tmp_path: Path) -> None:
    source = read_source(write(tmp_path, "plugin: depmirror.mirroring.graph\ngraph: g.yml\nstate_store: s.db\n"), {})
    assert source.graph == tmp_path / "g.yml"
    assert source.store == str(tmp_path / "s.db")
    assert source.prometheus_url is None and source.prometheus_timeout == 5.0


def test_a_store_url_is_kept_and_the_environment_fills_what_the_file_leaves_out(tmp_path: Path) -> None:
    path = write(tmp_path, "plugin: graph\ngraph: g.yml\n")
    env = {
        "DEPMIRROR_STORE": "postgresql://db/depmirror",
        "DEPMIRROR_PROMETHEUS_URL": "http://127.0.0.1:9090",
        "DEPMIRROR_PROMETHEUS_TOKEN": "secret",
    }
    source = read_source(path, env)
    assert source.store == "postgresql://db/depmirror"
    assert source.prometheus_url == "http://127.0.0.1:9090"
    assert "secret" not in repr(source), "the token must not show in a repr or a log line"


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        ("plugin: [unclosed\n", "", "not valid YAML"),
        ("- a list\n", "", "is not a mapping"),
        ("plugin: ansible.builtin.yaml\ngraph: g.yml\n", "plugin", "'ansible.builtin.yaml'"),
        ("plugin: graph\n", "graph", "is missing"),
        ("plugin: graph\ngraph: {x: 1}\n", "graph", "is missing"),
        ("plugin: graph\ngraph: g.yml\nstate_store: [1]\n", "state_store", "not a string"),
        (
            'plugin: graph\ngraph: g.yml\nprometheus_timeout: \'{{ lookup("pipe", "id") }}\'\n',
            "prometheus_timeout",
            "{{",
        ),
        ("plugin: graph\ngraph: g.yml\nprometheus_timeout: -1\n", "prometheus_timeout", "is -1"),
        ("plugin: graph\ngraph: g.yml\nprometheus_timeout: true\n", "prometheus_timeout", "True"),
        ("plugin: graph\ngraph: g.yml\nprometheus_url: 9090\n", "prometheus_url", "not a string"),
    ],
)
def test_bad_files_name_the_field_and_the_fix(tmp_path: Path, text: str, field: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        read_source(write(tmp_path, text), {})
    assert raised.value.field == field
    assert problem in raised.value.problem
    assert raised.value.fix
    assert str(tmp_path / "fleet.depmirror.yml") in str(raised.value)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        read_source(tmp_path / "nope.depmirror.yml", {})
