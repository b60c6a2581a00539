"""pyinfra operations for what the roles do with a handful of modules each.

`instance_present` and `instance_absent` are the mirror role's present.yml and absent.yml for one instance
(directories, files, daemon-reload, enabled, started or restarted, then the same readiness probe); they
decide from `DepmirrorHostState`, fetched once per host. `nginx_release` runs the collection's
`nginx_swap.py` on the load balancer (write, `nginx -t`, swap, reload, restore the last good), as the
nginx_release module and the runner's fast path do; in adjust it, `directory_present`, `service_running` and
`paths_absent` decide from the load balancer's `DepmirrorHostState` too. An operation that yields no command
changed nothing.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Callable, Generator, Iterator
from io import StringIO
from typing import Any

from pyinfra import host
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.facts.files import Sha1File

from depmirror.frontends.pyinfra.collection import InstanceFiles
from depmirror.frontends.pyinfra.facts import FileState, HostState, UnitState
from depmirror.rollback.nginx import NginxOptions, Release

UNIT_MODE, CONFIG_MODE, DIR_MODE = "644", "640", "750"

# Appended to nginx_swap.py's source: the arguments as JSON on stdin; a refused or failed swap exits 1 with
# the swap's own message, which pyinfra shows and the frontend reports.
SWAP_DRIVER = """

def _depmirror_pyinfra():
    import json, subprocess, sys

    def run(argv):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return done.returncode, done.stdout, done.stderr

    try:
        result = swap_release(json.load(sys.stdin), run)
    except SwapError as error:
        sys.stderr.write(error.msg + "\\n")
        sys.exit(1)
    print(json.dumps(result))


_depmirror_pyinfra()
"""


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def unit_name(dependency: str) -> str:
    return f"depmirror-{dependency}.service"


def _directory(path: str, known: FileState | None, mode: str) -> Iterator[StringCommand]:
    if known is None:
        # ansible.builtin.file gives every directory it creates the mode, missing parents included
        # (/var/lib/depmirror): a umask of the mode's complement does the same for `mkdir -p`.
        umask = f"{0o777 & ~int(mode, 8):03o}"
        yield StringCommand("umask", umask, "&&", "mkdir", "-p", "-m", mode, QuoteString(path))
    elif known.mode != mode:
        yield StringCommand("chmod", mode, QuoteString(path))


def _file(path: str, content: str, known: FileState | None, mode: str) -> Iterator[Any]:
    if known is None or known.sha1 != sha1(content):
        yield FileUploadCommand(StringIO(content), path, remote_temp_filename=host.get_temp_filename(path))
        yield StringCommand("chmod", mode, QuoteString(path))
    elif known.mode != mode:
        yield StringCommand("chmod", mode, QuoteString(path))


def readiness_probe(kind: str, port: int, role: str, health_path: str, timeout: int) -> str:
    """The mirror role's wait for one kind, bounded by `mirror_wait_timeout` tries one second apart."""
    if kind == "redis":
        want = "role:master" if role == "primary" else "master_link_status:up"
        return (
            f"for i in $(seq {int(timeout)}); do redis-cli -p {int(port)} info replication"
            f" | grep -q {shlex.quote(want)} && exit 0; sleep 1; done;"
            f" echo 'no {want} on port {int(port)} after {int(timeout)} s' >&2; exit 1"
        )
    if kind == "http":
        url = f"http://127.0.0.1:{int(port)}{health_path}"
        check = "urllib.request.urlopen(url, timeout=2).status == 200"
    else:
        url = f"127.0.0.1:{int(port)}"
        check = f"socket.create_connection(('127.0.0.1', {int(port)}), timeout=2).close() is None"
    program = (
        "import socket, sys, time, urllib.request\n"
        f"url = {url!r}\n"
        f"for _ in range({int(timeout)}):\n"
        "    try:\n"
        f"        if {check}:\n"
        "            sys.exit(0)\n"
        "    except OSError:\n"
        "        pass\n"
        "    time.sleep(1)\n"
        f"sys.exit(url + ' did not answer after {int(timeout)} s')\n"
    )
    return f"python3 -c {shlex.quote(program)}"


@operation()
def instance_present(
    instance: dict[str, Any], files: InstanceFiles, known: HostState, wait_timeout: int
) -> Generator[Any, None, None]:
    """present.yml for one item of `views.host_instances.instances_for_host`."""
    unit = unit_name(instance["dependency"])
    yield from _directory(files.data_dir, known.files.get(files.data_dir), DIR_MODE)
    config_changed = False
    if files.config is not None:
        config_dir = files.config_path.rsplit("/", 1)[0]
        yield from _directory(config_dir, known.files.get(config_dir), DIR_MODE)
        config_known = known.files.get(files.config_path)
        config_changed = config_known is None or config_known.sha1 != sha1(files.config)
        yield from _file(files.config_path, files.config, config_known, CONFIG_MODE)
    unit_known = known.files.get(files.unit_path)
    unit_changed = unit_known is None or unit_known.sha1 != sha1(files.unit)
    yield from _file(files.unit_path, files.unit, unit_known, UNIT_MODE)
    state = known.units.get(unit, UnitState("unknown", "unknown"))
    if unit_changed:
        yield "systemctl daemon-reload"
    if not state.is_enabled:
        yield StringCommand("systemctl", "enable", QuoteString(unit))
    if not state.running:
        yield StringCommand("systemctl", "start", QuoteString(unit))
    elif unit_changed or config_changed:
        yield StringCommand("systemctl", "restart", QuoteString(unit))
    if not state.running or unit_changed or config_changed:
        # A running instance that nothing touched is not probed: a no-op pass costs no probe.
        yield readiness_probe(
            instance["kind"], instance["port"], instance["role"], instance.get("health_path") or "/", wait_timeout
        )


@operation()
def instance_absent(dependency: str, files: InstanceFiles, known: HostState) -> Generator[Any, None, None]:
    """absent.yml: stop and disable where the unit exists, remove unit, configuration and data, reload."""
    unit = unit_name(dependency)
    state = known.units.get(unit, UnitState("unknown", "unknown"))
    if known.files.get(files.unit_path) is not None:
        if state.running:
            yield StringCommand("systemctl", "stop", QuoteString(unit))
        if state.is_enabled:
            yield StringCommand("systemctl", "disable", QuoteString(unit))
    present = [p for p in (files.unit_path, files.config_path, files.data_dir) if known.files.get(p) is not None]
    if present:
        yield StringCommand("rm", "-rf", *[QuoteString(p) for p in present])
        yield "systemctl daemon-reload"


def release_paths(release: Release, options: NginxOptions) -> tuple[str, ...]:
    """What `nginx_release` compares: nginx.conf and every file of the release."""
    return (options.nginx_conf, *(f"{release.release}/{name}" for name in release.files))


@operation()
def nginx_release(
    release: Release, options: NginxOptions, swap_source: str, known: HostState | None = None
) -> Generator[Any, None, None]:
    """Swap the release in when nginx.conf or a release file differs; the arguments go in on stdin. `known`:
    the host's state with `release_paths` read (adjust); None: read them with pyinfra's Sha1File fact."""

    def digest(path: str) -> str | None:
        if known is None:
            found: str | None = host.get_fact(Sha1File, path)
            return found
        state = known.files.get(path)
        return None if state is None else state.sha1

    if release_is_live(release, options, digest):
        host.noop(f"{options.nginx_conf} already points at {release.release}")
        return
    yield StringCommand("python3", "-c", QuoteString(swap_source + SWAP_DRIVER))


def release_is_live(release: Release, options: NginxOptions, digest: Callable[[str], str | None]) -> bool:
    """nginx.conf and every release file already hold what `release` renders (`digest`: a path's SHA-1, None
    when absent); anything else, a missing file included, means a swap."""
    paths = release_paths(release, options)
    wanted = (release.content, *release.files.values())
    return all(digest(path) == sha1(text) for path, text in zip(paths, wanted, strict=True))


@operation()
def directory_present(path: str, known: FileState | None, mode: str) -> Generator[Any, None, None]:
    """ansible.builtin.file state=directory with a mode, decided from the host's state."""
    yield from _directory(path, known, mode)


@operation()
def service_running(service: str, known: HostState) -> Generator[Any, None, None]:
    """ansible.builtin.systemd_service state=started enabled=true, decided from the host's state."""
    state = known.units.get(service, UnitState("unknown", "unknown"))
    if not state.running:
        yield StringCommand("systemctl", "start", QuoteString(service))
    if not state.is_enabled:
        yield StringCommand("systemctl", "enable", QuoteString(service))


@operation()
def paths_absent(paths: list[str]) -> Generator[Any, None, None]:
    """ansible.builtin.file state=absent on paths the host's state listed (so they exist)."""
    if paths:
        yield StringCommand("rm", "-rf", *[QuoteString(p) for p in paths])
