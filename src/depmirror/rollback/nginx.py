"""Render a release of the nginx_upstream role's templates in Python, exactly as the role's swap does."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from depmirror.views.upstreams import build_upstreams

# ansible-core's default for the `ansible_managed` variable the templates print first.
ANSIBLE_MANAGED = "Ansible managed"
TEMPLATES = ("http.conf", "stream.conf")


@dataclass(frozen=True, slots=True)
class NginxOptions:
    """The nginx_upstream role's defaults (roles/nginx_upstream/defaults/main.yml); set the same values here
    when an inventory overrides them, or the fast path and adjust.yml disagree about the files."""

    conf_dir: str = "/etc/nginx/depmirror"
    nginx_conf: str = "/etc/nginx/nginx.conf"
    service: str = "nginx"
    http_includes: tuple[str, ...] = ("/etc/nginx/conf.d/*.conf",)
    location_directives: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Release:
    release: str
    files: dict[str, str]
    content: str
    upstreams: list[dict[str, Any]] = field(default_factory=list)

    def swap_params(self, options: NginxOptions) -> dict[str, Any]:
        """The arguments of nginx_swap.swap_release (and of the nginx_release module)."""
        return {
            "release": self.release,
            "files": self.files,
            "content": self.content,
            "nginx_conf": options.nginx_conf,
            "last_good": f"{options.conf_dir}/last-good.conf",
            "service": options.service,
        }


def render_release(
    templates: Path,
    dependencies: Sequence[Mapping[str, Any]],
    routing: Mapping[str, Any],
    unhealthy_below: float,
    listen_address: str,
    options: NginxOptions,
) -> Release:
    upstreams = [u.to_dict() for u in build_upstreams(dependencies, routing, unhealthy_below)]
    # The role names the release `(… | to_json | hash('sha1'))[:12]`; json.dumps' defaults are to_json's.
    inputs = [upstreams, listen_address, list(options.location_directives), list(options.http_includes)]
    digest = hashlib.sha1(json.dumps(inputs).encode()).hexdigest()[:12]
    release = f"{options.conf_dir}/releases/{digest}"
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        trim_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        finalize=lambda value: "" if value is None else value,  # as Ansible's templar prints None
    )
    variables = {
        "ansible_managed": ANSIBLE_MANAGED,
        "_nginx_upstream_upstreams": upstreams,
        "_nginx_upstream_release": release,
        "nginx_upstream_listen_address": listen_address,
        "nginx_upstream_location_directives": list(options.location_directives),
        "nginx_upstream_http_includes": list(options.http_includes),
    }
    files = {name: env.get_template(f"{name}.j2").render(variables) for name in TEMPLATES}
    content = env.get_template("nginx.conf.j2").render(variables)
    return Release(release, files, content, upstreams)
