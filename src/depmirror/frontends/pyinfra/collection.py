"""The collection's own files, read where they are: the roles' templates and defaults, and the nginx swap.

There is one copy of each template in the repository (`roles/*/templates/*.j2`); the pyinfra frontend renders
those files with jinja2 and the variables the role would have, so that both frontends write the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

from depmirror.errors import ConfigError
from depmirror.rollback.nginx import ANSIBLE_MANAGED

MIRROR_TEMPLATES = Path("roles/mirror/templates")
MIRROR_DEFAULTS = Path("roles/mirror/defaults/main.yml")
NGINX_TEMPLATES = Path("roles/nginx_upstream/templates")
NGINX_DEFAULTS = Path("roles/nginx_upstream/defaults/main.yml")
SWAP_SOURCE = Path("plugins/module_utils/nginx_swap.py")
_MARKERS = (MIRROR_TEMPLATES / "instance.service.j2", SWAP_SOURCE)


def find_collection(explicit: str | Path | None = None) -> Path:
    """The collection's root: `explicit`, else the checkout or unpacked collection this package sits in.

    The collection tarball ships `src/` beside `roles/` (galaxy.yml), so both a checkout and an installed
    collection have `roles/` four levels above this file; a wheel alone has no roles, and then the caller
    must say where the collection is.
    """
    candidates = [Path(explicit)] if explicit else list(Path(__file__).resolve().parents)
    for root in candidates:
        if all((root / marker).is_file() for marker in _MARKERS):
            return root
    where = str(explicit) if explicit else "the directories above the depmirror package"
    raise ConfigError(
        "--collection",
        "",
        f"{where} holds no depmirror.mirroring collection (no {_MARKERS[0]} and {_MARKERS[1]})",
        "pass --collection with the collection's root, the directory with galaxy.yml",
    )


def role_defaults(root: Path, relative: Path) -> dict[str, Any]:
    """A role's defaults/main.yml; values that Ansible would template are refused (this side does not)."""
    path = root / relative
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(str(path), "", f"cannot be read: {error}", "restore the role's defaults file") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", "is not a mapping of variables", "restore the role's defaults file")
    return data


def _plain(path: Path, defaults: Mapping[str, Any], name: str) -> Any:
    value = defaults.get(name)
    if value is None or (isinstance(value, str) and "{{" in value):
        raise ConfigError(
            str(path), name, "is missing or a Jinja expression", "the pyinfra frontend needs a plain value here"
        )
    return value


def _environment(templates: Path) -> jinja2.Environment:
    # What ansible.builtin.template does with these templates: trim_blocks on, the trailing newline kept,
    # None printed as empty (rollback/nginx.py renders the nginx templates with the same settings).
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        trim_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        finalize=lambda value: "" if value is None else value,
    )


@dataclass(frozen=True, slots=True)
class MirrorDefaults:
    """The mirror role's defaults this frontend uses, read from roles/mirror/defaults/main.yml."""

    data_dir: str
    config_dir: str
    restart: str
    wait_timeout: int


@dataclass(frozen=True, slots=True)
class InstanceFiles:
    unit_path: str
    unit: str
    config_path: str  # the Redis configuration's path (written only for kind redis)
    config: str | None
    data_dir: str


class Collection:
    """The templates and defaults of one collection checkout, loaded once per run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        defaults_path = root / MIRROR_DEFAULTS
        defaults = role_defaults(root, MIRROR_DEFAULTS)
        self.mirror = MirrorDefaults(
            data_dir=str(_plain(defaults_path, defaults, "mirror_data_dir")),
            config_dir=str(_plain(defaults_path, defaults, "mirror_config_dir")),
            restart=str(_plain(defaults_path, defaults, "mirror_restart")),
            wait_timeout=int(_plain(defaults_path, defaults, "mirror_wait_timeout")),
        )
        nginx_path = root / NGINX_DEFAULTS
        nginx = role_defaults(root, NGINX_DEFAULTS)
        self.nginx_keep_releases = int(_plain(nginx_path, nginx, "nginx_upstream_keep_releases"))
        self.nginx_packages = [str(p) for p in _plain(nginx_path, nginx, "nginx_upstream_packages")]
        self.nginx_templates = root / NGINX_TEMPLATES
        self.swap_source = (root / SWAP_SOURCE).read_text(encoding="utf-8")
        self._mirror_env = _environment(root / MIRROR_TEMPLATES)

    def instance_files(self, instance: Mapping[str, Any]) -> InstanceFiles:
        """The unit (and Redis configuration) the mirror role renders for one item of `instances_for_host`."""
        name = instance["dependency"]
        variables = {
            "ansible_managed": ANSIBLE_MANAGED,
            "mirror_dependency": name,
            "mirror_kind": instance["kind"],
            "mirror_port": instance["port"],
            "mirror_role": instance["role"],
            "mirror_command": instance.get("command") or "",
            "mirror_primary_address": instance.get("primary_address") or "",
            "mirror_primary_port": instance.get("primary_port") or 0,
            "mirror_restart": self.mirror.restart,
            "mirror_data_dir": self.mirror.data_dir,
            "mirror_config_dir": self.mirror.config_dir,
        }
        unit = self._mirror_env.get_template("instance.service.j2").render(variables)
        config = None
        if instance["kind"] == "redis":
            config = self._mirror_env.get_template("redis.conf.j2").render(variables)
        return InstanceFiles(
            unit_path=f"/etc/systemd/system/depmirror-{name}.service",
            unit=unit,
            config_path=f"{self.mirror.config_dir}/{name}.redis.conf",
            config=config,
            data_dir=f"{self.mirror.data_dir}/{name}",
        )
