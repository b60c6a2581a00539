"""One nginx release per load balancer carrying every switch of a batch; a bad upstream is left out.

The release is rendered from what the LB routes now with every switched dependency's new routing, checked
with `nginx -t` and swapped in by the collection's nginx_swap (one reload). When nginx rejects it, nginx
names the file and line it stopped at; the dependency whose upstream holds that line is left out and the
release is rendered again without it, so one bad upstream never holds back the others. nginx keeps its
live configuration through every rejected attempt (the swap only moves a checked file in place).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from depmirror.errors import DepmirrorError
from depmirror.rollback.nginx import NginxOptions, Release, render_release
from depmirror.views.upstreams import RoutingError, build_upstreams

# nginx -t: `... in /etc/nginx/depmirror/releases/0a1b2c/http.conf:12`
_WHERE = re.compile(r"(?P<file>[^\s\"']+/(?P<name>http|stream)\.conf):(?P<line>\d+)")
# The templates open every upstream with `# <dependency>: <mode>` (roles/nginx_upstream/templates).
_OPENS = re.compile(r"^# (?P<dependency>\S+): \S+$")


class Transport(Protocol):
    """How a release reaches a load balancer: warm SSH sessions (`remote.Sessions`), or a local nginx."""

    def warm(self, address: str) -> None: ...

    def swap_release(
        self, address: str, swap_source: str, params: dict[str, Any], timeout_s: float
    ) -> dict[str, Any]: ...

    def run(self, address: str, command: str, stdin: str = "", timeout_s: float = 10.0) -> tuple[int, str, str]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ReleaseSpec:
    """What every LB's release is made of (the same for all of them but the listen address)."""

    templates: Path
    swap_source: str
    routing: Mapping[str, Any]
    unhealthy_below: float
    options: NginxOptions
    timeout_s: float


@dataclass(slots=True)
class LbRelease:
    lb: str
    release: str | None = None
    routed: frozenset[str] = frozenset()  # switched dependencies this LB routes the new way now
    errors: dict[str, str] = field(default_factory=dict)  # switched dependency -> why this LB does not
    attempts: int = 0
    reloads: int = 0


def unroutable(afters: Mapping[str, Mapping[str, Any]], spec: ReleaseSpec) -> dict[str, str]:
    """Switched dependencies whose new upstream cannot be built at all (checked alone, before any LB)."""
    problems = {}
    for name, after in afters.items():
        try:
            build_upstreams([after], spec.routing, spec.unhealthy_below)
        except RoutingError as error:
            problems[name] = str(error)
    return problems


def release_on(
    name: str,
    address: str,
    transport: Transport,
    spec: ReleaseSpec,
    current: Sequence[Mapping[str, Any]],
    afters: Mapping[str, Mapping[str, Any]],
) -> LbRelease:
    """Route every switch of `afters` on one LB with one release; leave out those nginx rejects."""
    included = dict(afters)
    done = LbRelease(name)
    # Each rejected attempt removes at least one dependency, so this ends: at most one try per switch + 1.
    while included:
        done.attempts += 1
        dependencies = [dict(included.get(item["name"], item)) for item in current]
        try:
            release = render_release(
                spec.templates, dependencies, spec.routing, spec.unhealthy_below, address, spec.options
            )
        except RoutingError as error:
            # Checked alone beforehand, a switched upstream renders; so this one is another dependency's
            # (what the LB routes now), and no release can be made here until adjust repairs it.
            done.errors.update({dependency: f"{name}: cannot render the release: {error}" for dependency in included})
            return done
        try:
            result = transport.swap_release(
                address, spec.swap_source, release.swap_params(spec.options), spec.timeout_s
            )
        except DepmirrorError as error:
            blamed = blamed_dependencies(str(error), release) & set(included)
            if not blamed:
                # Not one switched upstream's fault (or nginx did not say where): none of them is routed here.
                done.errors.update({dependency: f"{name}: {error}" for dependency in included})
                return done
            for dependency in sorted(blamed):
                done.errors[dependency] = f"{name}: nginx rejected its upstream: {error}"
                del included[dependency]
            continue
        done.release = release.release
        done.routed = frozenset(included)
        done.reloads += 1 if result.get("reloaded") else 0
        return done
    return done


def blamed_dependencies(message: str, release: Release) -> set[str]:
    """The dependencies whose upstream holds the lines nginx's message points at, in this release's files."""
    blamed = set()
    for where in _WHERE.finditer(message):
        if not where["file"].startswith(release.release + "/"):
            continue  # another release's file (or the live one): nothing of this batch
        text = release.files.get(f"{where['name']}.conf", "")
        owner = None
        for number, line in enumerate(text.splitlines(), start=1):
            if number > int(where["line"]):
                break
            opened = _OPENS.match(line)
            if opened:
                owner = opened["dependency"]
        if owner is not None:
            blamed.add(owner)
    return blamed
