"""The graph file's YAML reader: duplicate keys refused, merge keys still work, bad bytes reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from depmirror.errors import ConfigError
from depmirror.graph.load import load_graph


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "graph.yml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_a_merged_mapping_may_be_overridden_by_the_mappings_own_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "zones: {zone-a: {}}\n"
        "vms: {vm-a1: {address: 198.18.0.11, zone: zone-a}}\n"
        "dependencies:\n"
        "  cache: &cache {tier: 2, kind: redis, port: 6380, cost: 2.0}\n"
        "  sessions:\n"
        "    <<: *cache\n"
        "    tier: 0\n"
        "    port: 6381\n",
    )
    sessions = load_graph(path).dependencies["sessions"]
    assert (sessions.tier, sessions.port) == (0, 6381)  # its own keys win over the merged ones
    assert (sessions.kind, sessions.cost) == ("redis", 2.0)  # the rest comes from the merged mapping


def test_a_key_repeated_inside_one_mapping_is_refused_even_next_to_a_merge(tmp_path: Path) -> None:
    path = write(tmp_path, "zones:\n  <<: {zone-a: {}}\n  zone-b: {}\n  zone-b: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_graph(path)
    assert caught.value.field == "line 4"
    assert "duplicate name 'zone-b' (first defined at line 3)" in caught.value.problem


def test_an_unhashable_key_is_a_yaml_error_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_graph(write(tmp_path, "zones:\n  ? [zone-a, zone-b]\n  : {}\n"))
    assert "not valid YAML: found unhashable key" in caught.value.problem


def test_a_file_that_is_not_utf8_is_a_yaml_error_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_graph(write(tmp_path, b"zones: {zone-\xff: {}}\n"))
    assert "not valid YAML" in caught.value.problem
