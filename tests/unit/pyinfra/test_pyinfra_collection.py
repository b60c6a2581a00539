"""The roles' own templates and defaults, rendered here as ansible.builtin.template renders them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from depmirror.errors import ConfigError
from depmirror.frontends.pyinfra.collection import Collection, find_collection

ROOT = Path(__file__).resolve().parents[3]
REDIS_REPLICA = {
    "dependency": "session-cache",
    "kind": "redis",
    "port": 6380,
    "role": "standby",
    "command": "",
    "primary_address": "198.18.0.11",
    "primary_port": 6380,
}
HTTP = {"dependency": "catalog-api", "kind": "http", "port": 8081, "role": "mirror", "command": "python3 -m x {port}"}


def ansible_render(template: str, variables: dict[str, object]) -> str:
    """What Ansible's templar makes of the template file, with the role's defaults under the item's values."""
    defaults = Collection(ROOT).mirror
    templar = Templar(
        loader=DataLoader(),
        variables={
            "ansible_managed": "Ansible managed",
            "mirror_data_dir": defaults.data_dir,
            "mirror_config_dir": defaults.config_dir,
            "mirror_restart": defaults.restart,
            **variables,
        },
    )
    text = trust_as_template((ROOT / "roles/mirror/templates" / template).read_text())
    # The template action's settings: trim_blocks on, the trailing newline kept, backslashes as written.
    rendered = templar.template(
        text, preserve_trailing_newlines=True, escape_backslashes=False, overrides={"trim_blocks": True}
    )
    return str(rendered)


@pytest.mark.parametrize("item", [REDIS_REPLICA, HTTP], ids=["redis-standby", "http-mirror"])
def test_the_unit_and_redis_conf_are_what_ansible_s_templar_renders(item: dict[str, object]) -> None:
    files = Collection(find_collection()).instance_files(item)
    variables = {f"mirror_{k}" if k != "dependency" else "mirror_dependency": v for k, v in item.items()}
    variables.setdefault("mirror_primary_address", "")
    variables.setdefault("mirror_primary_port", 0)
    assert files.unit == ansible_render("instance.service.j2", variables)
    if item["kind"] == "redis":
        assert files.config == ansible_render("redis.conf.j2", variables)
        assert "replicaof 198.18.0.11 6380\n" in (files.config or "")
    else:
        assert files.config is None
    assert files.unit_path == f"/etc/systemd/system/depmirror-{item['dependency']}.service"


def test_the_collection_around_the_package_is_found_and_a_wrong_one_is_refused(tmp_path: Path) -> None:
    assert find_collection() == ROOT
    with pytest.raises(ConfigError, match="--collection") as raised:
        find_collection(tmp_path)
    assert "galaxy.yml" in str(raised.value)


def test_a_templated_default_is_refused_with_the_file_and_variable(tmp_path: Path) -> None:
    copy = tmp_path / "collection"
    for part in ("roles/mirror", "roles/nginx_upstream", "plugins/module_utils"):
        shutil.copytree(ROOT / part, copy / part)
    defaults = copy / "roles/mirror/defaults/main.yml"
    defaults.write_text(defaults.read_text().replace("mirror_restart: on-failure", "mirror_restart: '{{ x }}'"))
    with pytest.raises(ConfigError) as raised:
        Collection(find_collection(copy))
    assert raised.value.field == "mirror_restart" and str(defaults) in str(raised.value)
