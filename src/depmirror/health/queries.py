"""PromQL for every signal of a dependency, and where the blackbox exporter probes each instance.

The same expressions feed the health verdicts (evaluate.py) and the alert rules (rules.py), so the
planner and the alerts read one signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Template

from depmirror.graph.health_spec import HealthSpec
from depmirror.graph.model import VM, Dependency

BLACKBOX_JOB = "depmirror-blackbox"
# Blackbox exporter modules from Debian's /etc/prometheus/blackbox.yml (also the exporter's defaults).
# Every graph kind has one (a KeyError here once made the rules of a `postgresql` dependency unrenderable);
# a `stateful:` block keeps its kind's probe: promote/fence/lag move state, reachability is still a connect.
PROBE_MODULES = {"http": "http_2xx", "tcp": "tcp_connect", "redis": "tcp_connect", "postgresql": "tcp_connect"}
SIGNALS = ("up", "latency", "error_ratio")


@dataclass(frozen=True, slots=True)
class InstanceRef:
    """An instance to judge or probe: dependency D on VM `host` (listening on its address at D's port)."""

    dependency: str
    host: str
    role: str | None = None


@dataclass(frozen=True, slots=True)
class DependencyQueries:
    """The PromQL of one dependency; each returns one series per instance, keyed by its `host` label."""

    dependency: str
    up: str
    latency: str | None
    error_ratio: str | None
    samples: int

    def by_signal(self) -> dict[str, str]:
        found = {"up": self.up, "latency": self.latency, "error_ratio": self.error_ratio}
        return {name: query for name, query in found.items() if query is not None}


def probe_module(dependency: Dependency) -> str:
    return PROBE_MODULES[dependency.kind]


def probe_target(dependency: Dependency, vm: VM) -> str:
    """What the blackbox exporter is asked to probe: an instance listens on its VM's address at the port."""
    if dependency.kind == "http":
        return f"http://{vm.address}:{dependency.port}{dependency.deploy.health_path}"
    return f"{vm.address}:{dependency.port}"


def blackbox_selector(dependency: str, extra: str = "") -> str:
    labels = f'job="{BLACKBOX_JOB}", dependency="{dependency}"'
    return "{" + labels + (", " + extra if extra else "") + "}"


def spec_of(dependency: Dependency) -> HealthSpec:
    """The graph's `health:` section, or the defaults of the dependency's kind."""
    return dependency.health or HealthSpec()


def queries_for(dependency: Dependency, spec: HealthSpec | None = None) -> DependencyQueries:
    spec = spec or spec_of(dependency)
    selector = blackbox_selector(dependency.name)

    def custom(text: str | None) -> str | None:
        return None if text is None else Template(text).safe_substitute(dependency=dependency.name)

    return DependencyQueries(
        dependency=dependency.name,
        up=custom(spec.up) or f"probe_success{selector}",
        latency=custom(spec.latency) or f"probe_duration_seconds{selector}",
        # A single probe has no error ratio; one comes only from the dependency's own metrics.
        error_ratio=custom(spec.error_ratio),
        samples=spec.samples,
    )


def format_duration(seconds: float) -> str:
    """A Prometheus duration: whole milliseconds, written in the largest unit that keeps it exact."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    if millis % 1000:
        return f"{millis}ms"
    return f"{millis // 1000}s"
