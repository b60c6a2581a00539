"""The load balancer's operations decide from the one-round-trip host state: a drifted nginx.conf or release
file means a swap, a stopped or disabled nginx a start or enable, old releases beyond the kept ones go."""

from __future__ import annotations

from typing import Any

from depmirror.frontends.pyinfra.facts import FileState, HostState, UnitState
from depmirror.frontends.pyinfra.operations import (
    directory_present,
    paths_absent,
    release_is_live,
    release_paths,
    service_running,
    sha1,
)
from depmirror.rollback.nginx import NginxOptions, Release

OPTIONS = NginxOptions()
RELEASE = Release(
    release=f"{OPTIONS.conf_dir}/releases/abc123",
    files={"http.conf": "upstream a {}\n", "stream.conf": "upstream b {}\n"},
    content="include /etc/nginx/depmirror/releases/abc123/http.conf;\n",
)


def commands(op: Any, **kwargs: Any) -> list[str]:
    """The commands an operation yields (its generator, without pyinfra's state)."""
    return [c if isinstance(c, str) else c.get_raw_value() for c in op._inner(**kwargs)]


def live() -> dict[str, str | None]:
    return {
        OPTIONS.nginx_conf: sha1(RELEASE.content),
        **{f"{RELEASE.release}/{name}": sha1(text) for name, text in RELEASE.files.items()},
    }


def test_a_release_that_is_already_live_needs_no_swap() -> None:
    assert release_paths(RELEASE, OPTIONS)[0] == OPTIONS.nginx_conf
    assert release_is_live(RELEASE, OPTIONS, live().get)


def test_a_changed_or_missing_nginx_conf_or_release_file_means_a_swap() -> None:
    for path in live():
        changed = {**live(), path: sha1("# drift\n")}
        assert not release_is_live(RELEASE, OPTIONS, changed.get), path
        missing = {**live(), path: None}
        assert not release_is_live(RELEASE, OPTIONS, missing.get), path


def test_nginx_is_started_and_enabled_only_when_it_is_not() -> None:
    def state(active: str, enabled: str) -> HostState:
        return HostState(units={"nginx": UnitState(active, enabled)})

    assert commands(service_running, service="nginx", known=state("active", "enabled")) == []
    assert commands(service_running, service="nginx", known=state("inactive", "enabled")) == ["systemctl start nginx"]
    assert commands(service_running, service="nginx", known=state("active", "disabled")) == ["systemctl enable nginx"]
    # Not asked at all (no answer from systemctl): both, as the role's systemd_service would.
    assert commands(service_running, service="nginx", known=HostState()) == [
        "systemctl start nginx",
        "systemctl enable nginx",
    ]


def test_the_release_directory_is_made_or_fixed_only_when_it_differs() -> None:
    path = OPTIONS.conf_dir
    assert commands(directory_present, path=path, known=FileState("755", None), mode="755") == []
    assert commands(directory_present, path=path, known=FileState("700", None), mode="755") == [f"chmod 755 {path}"]
    assert commands(directory_present, path=path, known=None, mode="755") == [f"umask 022 && mkdir -p -m 755 {path}"]


def test_old_releases_are_removed_quoted() -> None:
    assert commands(paths_absent, paths=[]) == []
    assert commands(paths_absent, paths=["/etc/nginx/depmirror/releases/a b"]) == [
        "rm -rf '/etc/nginx/depmirror/releases/a b'"
    ]
