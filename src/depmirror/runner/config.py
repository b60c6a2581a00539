"""The runner's YAML config (docs/runner.md), validated into dataclasses with file/field/fix errors."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from depmirror.durations import parse_duration
from depmirror.errors import ConfigError
from depmirror.rollback.nginx import NginxOptions
from depmirror.rollback.remote import SshOptions
from depmirror.rollback.switchover import FastPathConfig
from depmirror.runner.api.scopes import SCOPES, ApiToken
from depmirror.runner.dependencies import load_placed_instances, merge_placed
from depmirror.runner.secrets import MIN_SECRET_BYTES
from depmirror.store.factory import default_store_url

AUTH_TYPES = ("bearer", "basic", "none")
ACTION_KINDS = ("ansible-runner", "awx")
MODES = ("act", "shadow")
ON_INTERRUPTED = ("retry", "hold")
ON_UNKNOWN_HEALTH = ("refuse", "delegate")
RECONCILE_FRONTENDS = ("pyinfra", "ansible", "awx")
# The dispatch window delays every alert's action: more than this is a mistake, not a tuning.
MAX_DISPATCH_WINDOW_S = 5.0
DISPATCH_WINDOW_S = 0.2
DISPATCH_WINDOW_MAX_S = 1.0
_NGINX = NginxOptions()


@dataclass(frozen=True, slots=True)
class AuthConfig:
    type: str
    token: str = field(default="", repr=False)
    username: str = ""
    password: str = field(default="", repr=False)
    # Bearer tokens of the operator API (/api/v1/), each with its scopes (docs/runner.md, "API").
    api_tokens: tuple[ApiToken, ...] = ()


@dataclass(frozen=True, slots=True)
class AwxConfig:
    url: str
    token: str = field(repr=False)
    job_template_id: int
    failback_job_template_id: int | None = None
    poll_interval_s: float = 2.0
    verify_tls: bool = True
    # Read ALLOW_JINJA_IN_EXTRA_VARS through the API before launching (needs System Auditor).
    verify_jinja_setting: bool = True


@dataclass(frozen=True, slots=True)
class ActionConfig:
    kind: str = "ansible-runner"
    playbook: Path = Path("playbooks/rollback.yml")
    failback_playbook: Path = Path("playbooks/failback.yml")
    inventory: tuple[Path, ...] = ()
    work_dir: Path = Path("runner-work")
    timeout_s: float = 600.0
    envvars: dict[str, str] = field(default_factory=dict)
    awx: AwxConfig | None = None
    fast_path: FastPathConfig | None = None


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    cooldown_s: float = 300.0
    flap_window_s: float = 900.0
    flap_max_transitions: int = 6
    failback: bool = False
    failback_hold_s: float = 300.0
    on_interrupted: str = "retry"
    on_unknown_health: str = "refuse"
    max_concurrent_actions: int = 4
    # Several runners on one store: how long a runner's hold on a dependency lasts without renewal, so how
    # soon another takes over from a runner that died mid-switchover (docs/ha.md).
    lease_s: float = 5.0
    # The worker's gather (docs/runner.md, "Dispatch window"): once woken it dispatches after this long
    # without another alert, or at most dispatch_window_max_s after the first, so a burst is one batch.
    dispatch_window_s: float = DISPATCH_WINDOW_S
    dispatch_window_max_s: float = DISPATCH_WINDOW_MAX_S


@dataclass(frozen=True, slots=True)
class ReconcileConfig:
    """The reconciliation loop (runner/reconcile.py, docs/runner.md "Reconciliation"); off unless enabled."""

    enabled: bool = False
    frontend: str = "pyinfra"
    graph: Path | None = None
    interval_s: float = 30.0
    min_gap_s: float = 60.0
    timeout_s: float = 600.0
    # pyinfra: the *.depmirror.yml the frontend reads; ansible: the inventories (default action.inventory).
    fleet_file: Path | None = None
    inventory: tuple[Path, ...] = ()
    playbook: Path = Path("playbooks/adjust.yml")
    awx_job_template_id: int | None = None
    ssh: SshOptions = field(default_factory=SshOptions)
    prometheus_url: str = ""
    prometheus_timeout_s: float = 2.0


@dataclass(frozen=True, slots=True)
class HealthConfig:
    checker: str = "none"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    path: Path
    dependencies: frozenset[str]
    # Hosts the graph's plan (or the config's `dependencies` mapping) places each dependency on: what an
    # alert's instance label is checked against while the store records no applied plan.
    placed: dict[str, frozenset[str]] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 9466
    tls_cert: Path | None = None
    tls_key: Path | None = None
    auth: AuthConfig = AuthConfig(type="none")
    max_body_bytes: int = 1_048_576
    store: str = ""
    mode: str = "act"
    runner_id: str = ""
    dependency_label: str = "dependency"
    instance_label: str = "instance"
    action: ActionConfig = ActionConfig()
    policy: PolicyConfig = PolicyConfig()
    health: HealthConfig = HealthConfig()
    reconcile: ReconcileConfig = ReconcileConfig()
    queue_retention_s: float = 7 * 86400.0
    secret_envs: tuple[str, ...] = ()

    def secrets(self) -> tuple[str, ...]:
        """Every secret value the runner holds: what its logs must never show."""
        values = [self.auth.token, self.auth.password, *(api.token for api in self.auth.api_tokens)]
        if self.action.awx is not None:
            values.append(self.action.awx.token)
        if self.action.fast_path is not None and self.action.fast_path.prometheus_token:
            values.append(self.action.fast_path.prometheus_token)
        return tuple(value for value in values if value)


class _Reader:
    """Typed access to one mapping of the file, naming the dotted field in every error."""

    def __init__(self, file: Path, data: Any, prefix: str = "", secret_envs: list[str] | None = None) -> None:
        self.file = str(file)
        self.prefix = prefix
        # Shared by every section of one file: the environment variables that held secrets.
        self.secret_envs: list[str] = [] if secret_envs is None else secret_envs
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(self.file, prefix or "(top level)", "must be a mapping", "write key: value pairs")
        self.data: dict[str, Any] = data

    def name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str, problem: str, fix: str = "") -> ConfigError:
        return ConfigError(self.file, self.name(key), problem, fix)

    def section(self, key: str) -> _Reader:
        return _Reader(Path(self.file), self.data.get(key), self.name(key), self.secret_envs)

    def text(self, key: str, default: str = "") -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, got {type(value).__name__}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(key, default)
        if value not in choices:
            raise self.error(key, f"is {value!r}", f"use one of: {', '.join(choices)}")
        return value

    def number(self, key: str, default: float, minimum: float = 0.0) -> float:
        value = self.data.get(key, default)
        # NaN compares false with everything, so `value < minimum` alone would let .nan and .inf through.
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < minimum:
            raise self.error(key, f"must be a finite number >= {minimum}, got {value!r}")
        return float(value)

    def integer(self, key: str, default: int, minimum: int = 0, maximum: int = 2**31) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise self.error(key, f"must be an integer in {minimum}..{maximum}, got {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def path(self, key: str, default: str | None) -> Path | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.error(key, "must be a non-empty path")
        # Relative paths are relative to the config file, so the runner works from any directory.
        return (Path(self.file).parent / value).resolve()

    def secret(self, key: str) -> str:
        """`KEY_env: NAME` (read $NAME) or `KEY_file: PATH`; never the secret itself in the file."""
        env_name, file_name = self.data.get(f"{key}_env"), self.data.get(f"{key}_file")
        if key in self.data:
            raise self.error(key, "secrets are not read from the config file", f"use {key}_env or {key}_file")
        if env_name is not None:
            if not isinstance(env_name, str) or not os.environ.get(env_name):
                raise self.error(
                    f"{key}_env",
                    f"environment variable {env_name!r} is not set or empty",
                    f"export {env_name}=...",
                )
            self.secret_envs.append(env_name)
            return os.environ[env_name]
        if file_name is not None:
            secret_path = self.path(f"{key}_file", None)
            assert secret_path is not None
            try:
                value = secret_path.read_text(encoding="utf-8").strip()
            except OSError as error:
                raise self.error(f"{key}_file", f"cannot read {secret_path}: {error.strerror}") from error
            if not value:
                raise self.error(f"{key}_file", f"{secret_path} is empty")
            return value
        raise self.error(f"{key}_env", "is required", f"set {key}_env: VARIABLE or {key}_file: PATH")


def load_config(path: str | Path) -> RunnerConfig:
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(str(file), "", f"cannot read: {error.strerror}", "pass --config PATH") from error
    except yaml.YAMLError as error:
        raise ConfigError(str(file), "", f"not valid YAML: {error}") from error
    top = _Reader(file, raw)
    known = {
        "listen",
        "tls",
        "auth",
        "max_body_bytes",
        "store",
        "mode",
        "runner_id",
        "graph",
        "dependencies",
        "labels",
        "action",
        "policy",
        "health",
        "reconcile",
        "queue_retention_seconds",
    }
    for key in top.data:
        if key not in known:
            raise top.error(key, "unknown setting", f"known settings: {', '.join(sorted(known))}")

    listen = top.section("listen")
    tls = top.section("tls")
    tls_cert, tls_key = tls.path("cert", None), tls.path("key", None)
    if (tls_cert is None) != (tls_key is None):
        raise tls.error("cert", "tls needs both cert and key")
    labels = top.section("labels")
    host = listen.text("host", "127.0.0.1")
    auth = _auth(top.section("auth"), host)
    auth = dataclasses.replace(auth, api_tokens=_api_tokens(top.section("auth")))
    mode = top.choice("mode", MODES, "act")
    action = _action(top.section("action"), mode, top)
    placed = _placed(top)
    reconcile = _reconcile(top.section("reconcile"), top, action)
    return RunnerConfig(
        path=file,
        dependencies=frozenset(placed),
        placed=placed,
        host=host,
        port=listen.integer("port", 9466, 0, 65535),
        tls_cert=tls_cert,
        tls_key=tls_key,
        auth=auth,
        max_body_bytes=top.integer("max_body_bytes", 1_048_576, 1024, 64 * 1_048_576),
        store=_store(top),
        mode=mode,
        runner_id=top.text("runner_id", "") or socket.gethostname(),
        dependency_label=labels.text("dependency", "dependency"),
        instance_label=labels.text("instance", "instance"),
        action=action,
        policy=_policy(top.section("policy")),
        health=_health(top.section("health")),
        reconcile=reconcile,
        queue_retention_s=top.number("queue_retention_seconds", 7 * 86400.0, 60.0),
        secret_envs=tuple(top.secret_envs),
    )


def _store(top: _Reader) -> str:
    value = top.text("store", "")
    if not value:
        return default_store_url()
    if "://" in value or value.startswith("sqlite:"):
        return value
    resolved = top.path("store", None)
    return str(resolved)


def _placed(top: _Reader) -> dict[str, frozenset[str]]:
    from_graph: dict[str, frozenset[str]] = {}
    graph = top.path("graph", None)
    if graph is not None:
        from_graph = load_placed_instances(graph, config_file=top.file)
    listed = top.data.get("dependencies")
    from_config: dict[str, frozenset[str]] = {}
    if isinstance(listed, list) and all(isinstance(n, str) and n for n in listed):
        from_config = {name: frozenset() for name in listed}
    elif isinstance(listed, dict):
        for name, hosts in listed.items():
            if (
                not isinstance(name, str)
                or not isinstance(hosts, list)
                or not all(isinstance(h, str) and h for h in hosts)
            ):
                raise top.error(
                    f"dependencies.{name}", "must be a list of the hosts that run it", "e.g. [vm-a1, vm-b1]"
                )
            from_config[name] = frozenset(hosts)
    elif listed is not None:
        raise top.error("dependencies", "must be a list of names or a mapping of names to host lists", "or set graph:")
    placed = merge_placed(from_graph, from_config)
    if not placed:
        raise top.error("graph", "no dependencies known", "set graph: PATH (the graph file) or dependencies: {...}")
    return placed


def _auth(auth: _Reader, host: str) -> AuthConfig:
    kind = auth.choice("type", AUTH_TYPES, "bearer")
    if kind == "bearer":
        return AuthConfig(type=kind, token=_long_secret(auth, "token"))
    if kind == "basic":
        username = auth.text("username", "")
        if not username:
            raise auth.error("username", "is required for basic auth")
        return AuthConfig(type=kind, username=username, password=_long_secret(auth, "password"))
    if not _loopback(host):
        raise auth.error(
            "type",
            f"none is allowed only when listen.host is a loopback address, not {host!r}",
            "use bearer or basic auth, or listen on 127.0.0.1",
        )
    return AuthConfig(type="none")


def read_auth(data: Any, *, file: str, field: str, host: str) -> AuthConfig:
    """An `auth:` mapping in the runner config's shape, read from another file (the EDA event source's
    rulebook arguments), with the same rules and file/field/fix errors."""
    return _auth(_Reader(Path(file), data, field), host)


def _api_tokens(auth: _Reader) -> tuple[ApiToken, ...]:
    listed = auth.data.get("api_tokens", [])
    if not isinstance(listed, list):
        raise auth.error("api_tokens", "must be a list", "- {name: alice, token_env: VAR, scopes: [read]}")
    tokens: list[ApiToken] = []
    for index, item in enumerate(listed):
        entry = _Reader(Path(auth.file), item, auth.name(f"api_tokens[{index}]"), auth.secret_envs)
        name = entry.text("name", "")
        if not name or len(name) > 200 or not name.isprintable():
            raise entry.error("name", "is required (1..200 printable characters)", "who holds it: the history says")
        scopes = entry.data.get("scopes", ["read"])
        if not isinstance(scopes, list) or not scopes or not all(scope in SCOPES for scope in scopes):
            raise entry.error("scopes", f"must be a list of {', '.join(SCOPES)}, got {scopes!r}")
        token = ApiToken(name=name, token=_long_secret(entry, "token"), scopes=tuple(scopes))
        if any(other.name == name or other.token == token.token for other in tokens):
            raise entry.error("name", "two api_tokens share a name or a token", "one entry per holder")
        tokens.append(token)
    return tuple(tokens)


def _long_secret(auth: _Reader, key: str) -> str:
    value = auth.secret(key)
    if len(value.encode("utf-8")) < MIN_SECRET_BYTES:
        raise auth.error(
            key,
            f"is shorter than {MIN_SECRET_BYTES} bytes",
            "use a random secret, e.g. `openssl rand -hex 32`",
        )
    return value


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _action(action: _Reader, mode: str, top: _Reader) -> ActionConfig:
    kind = action.choice("kind", ACTION_KINDS, "ansible-runner")
    playbook = action.path("playbook", "playbooks/rollback.yml")
    failback_playbook = action.path("failback_playbook", "playbooks/failback.yml")
    assert playbook is not None and failback_playbook is not None
    if kind == "ansible-runner" and mode == "act" and not playbook.is_file():
        raise action.error("playbook", f"{playbook} does not exist", "point it at playbooks/rollback.yml")
    inventory_raw = action.data.get("inventory", [])
    if isinstance(inventory_raw, str):
        inventory_raw = [inventory_raw]
    if not isinstance(inventory_raw, list) or not all(isinstance(i, str) for i in inventory_raw):
        raise action.error("inventory", "must be a path or a list of paths")
    inventories = tuple((Path(action.file).parent / i).resolve() for i in inventory_raw)
    envvars = action.data.get("envvars", {})
    if not isinstance(envvars, dict) or not all(isinstance(v, str) for v in envvars.values()):
        raise action.error("envvars", "must map names to string values")
    work_dir = action.path("work_dir", "runner-work")
    assert work_dir is not None
    awx = _awx(action.section("awx")) if kind == "awx" else None
    fast = action.section("fast_path")
    fast_path = None
    if fast.boolean("enabled", False):
        if kind != "ansible-runner":
            raise fast.error("enabled", "the fast path needs action.kind ansible-runner", "or set enabled: false")
        fast_path = _fast_path(fast, top, playbook)
    return ActionConfig(
        kind=kind,
        playbook=playbook,
        failback_playbook=failback_playbook,
        inventory=inventories,
        work_dir=work_dir,
        timeout_s=action.number("timeout_seconds", 600.0, 1.0),
        envvars={str(k): v for k, v in envvars.items()},
        awx=awx,
        fast_path=fast_path,
    )


def _fast_path(fast: _Reader, top: _Reader, playbook: Path) -> FastPathConfig:
    health = top.section("health").data.get("options") or {}
    graph = (
        fast.path("graph", None)
        or top.path("graph", None)
        or (Path(health["graph"]) if isinstance(health.get("graph"), str) else None)
    )
    if graph is None or not graph.is_file():
        raise fast.error("graph", f"{graph or 'no graph file'} is not a file", "set graph: at the top or here")
    collection = fast.path("collection", None) or playbook.resolve().parent.parent
    if not (collection / "plugins/module_utils/nginx_swap.py").is_file():
        raise fast.error(
            "collection",
            f"{collection} is not the depmirror.mirroring collection",
            "point it at the collection's root (the directory with galaxy.yml)",
        )
    url = fast.text("prometheus_url", "") or str(health.get("prometheus_url") or "")
    if not url:
        raise fast.error("prometheus_url", "missing", "the Prometheus base URL (or health.options.prometheus_url)")
    interval = fast.data.get("health_interval", health.get("interval", "5s"))
    ssh, nginx = fast.section("ssh"), fast.section("nginx")
    token_env = fast.text("prometheus_token_env", "DEPMIRROR_PROMETHEUS_TOKEN")
    try:
        interval_s = parse_duration(interval)
    except (TypeError, ValueError) as error:
        raise fast.error("health_interval", str(error), "a duration like 5s") from error
    return FastPathConfig(
        graph=graph,
        collection=collection,
        prometheus_url=url,
        prometheus_token=os.environ.get(token_env) or None,
        prometheus_timeout_s=fast.number("prometheus_timeout_seconds", 2.0, 0.1),
        health_interval_s=interval_s,
        ssh=SshOptions(
            user=ssh.text("user", "root"),
            key_file=str(ssh.path("key_file", None) or "") or None,
            known_hosts=str(ssh.path("known_hosts", None) or "") or None,
            port=ssh.integer("port", 22, 1, 65535),
            connect_timeout_s=ssh.number("connect_timeout_seconds", 2.0, 0.1),
            become=ssh.boolean("become", False),
        ),
        nginx=NginxOptions(
            conf_dir=nginx.text("conf_dir", _NGINX.conf_dir),
            nginx_conf=nginx.text("nginx_conf", _NGINX.nginx_conf),
            service=nginx.text("service", _NGINX.service),
            http_includes=_strings(nginx, "http_includes", _NGINX.http_includes),
            location_directives=_strings(nginx, "location_directives", _NGINX.location_directives),
        ),
        verify_requests=fast.integer("verify_requests", 5, 1, 1000),
        verify_deadline_s=fast.number("verify_deadline_seconds", 3.0, 0.1),
        redis_max_lag_bytes=fast.integer("redis_max_lag_bytes", 0, 0),
        redis_timeout_s=fast.number("redis_timeout_seconds", 1.0, 0.05),
        postgres_max_lag_bytes=fast.integer("postgresql_max_lag_bytes", 0, 0, 2**62),
        postgres_timeout_s=fast.number("postgresql_timeout_seconds", 10.0, 1.0),
        stateful_max_lag=fast.integer("stateful_max_lag", 0, 0, 2**62),
        stateful_timeout_s=fast.number("stateful_timeout_seconds", 10.0, 0.1),
        swap_timeout_s=fast.number("swap_timeout_seconds", 10.0, 0.5),
        fence_timeout_s=fast.number("fence_timeout_seconds", 3.0, 0.1),
        unit_prefix=fast.text("unit_prefix", "depmirror-"),
    )


def _strings(section: _Reader, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = section.data.get(key, list(default))
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise section.error(key, "must be a list of strings")
    return tuple(value)


def _awx(awx: _Reader) -> AwxConfig:
    url = awx.text("url", "")
    if not url.startswith(("http://", "https://")):
        raise awx.error("url", f"must be an http(s) URL, got {url!r}", "e.g. https://awx.example.com")
    failback = awx.data.get("failback_job_template_id")
    return AwxConfig(
        url=url.rstrip("/"),
        token=awx.secret("token"),
        job_template_id=awx.integer("job_template_id", 0, 1),
        failback_job_template_id=None if failback is None else awx.integer("failback_job_template_id", 0, 1),
        poll_interval_s=awx.number("poll_interval_seconds", 2.0, 0.05),
        verify_tls=awx.boolean("verify_tls", True),
        verify_jinja_setting=awx.boolean("verify_jinja_setting", True),
    )


def _policy(policy: _Reader) -> PolicyConfig:
    return PolicyConfig(
        cooldown_s=policy.number("cooldown_seconds", 300.0),
        flap_window_s=policy.number("flap_window_seconds", 900.0),
        flap_max_transitions=policy.integer("flap_max_transitions", 6, 2),
        failback=policy.boolean("failback", False),
        failback_hold_s=policy.number("failback_hold_seconds", 300.0),
        on_interrupted=policy.choice("on_interrupted", ON_INTERRUPTED, "retry"),
        on_unknown_health=policy.choice("on_unknown_health", ON_UNKNOWN_HEALTH, "refuse"),
        max_concurrent_actions=policy.integer("max_concurrent_actions", 4, 1, 64),
        lease_s=policy.number("lease_seconds", 5.0, 1.0),
        **_dispatch_window(policy),
    )


def _dispatch_window(policy: _Reader) -> dict[str, float]:
    window = policy.number("dispatch_window_seconds", DISPATCH_WINDOW_S)
    most = policy.number("dispatch_window_max_seconds", max(window, DISPATCH_WINDOW_MAX_S))
    if window > MAX_DISPATCH_WINDOW_S or most > MAX_DISPATCH_WINDOW_S:
        key = "dispatch_window_seconds" if window > MAX_DISPATCH_WINDOW_S else "dispatch_window_max_seconds"
        fix = "every alert may wait it: a few tenths of a second"
        raise policy.error(key, f"is over {MAX_DISPATCH_WINDOW_S:g} s", fix)
    if most < window:
        raise policy.error(
            "dispatch_window_max_seconds",
            f"is {most:g}, less than dispatch_window_seconds ({window:g})",
            "make it at least dispatch_window_seconds",
        )
    return {"dispatch_window_s": window, "dispatch_window_max_s": most}


def _reconcile(section: _Reader, top: _Reader, action: ActionConfig) -> ReconcileConfig:
    known = {
        "enabled", "frontend", "interval_seconds", "min_gap_seconds", "timeout_seconds", "fleet_file", "inventory",
        "playbook", "awx_job_template_id", "ssh", "prometheus_url", "prometheus_timeout_seconds",
    }  # fmt: skip
    for key in section.data:
        if key not in known:
            raise section.error(key, "unknown setting", f"known settings: {', '.join(sorted(known))}")
    if not section.boolean("enabled", False):
        return ReconcileConfig()
    frontend = section.data.get("frontend")
    if frontend not in RECONCILE_FRONTENDS:
        raise section.error("frontend", f"is {frontend!r}", f"use one of: {', '.join(RECONCILE_FRONTENDS)}")
    graph = top.path("graph", None)
    if graph is None or not graph.is_file():
        raise top.error("graph", f"{graph or 'not set'}: reconciliation plans from the graph file", "set graph: PATH")
    fleet_file = section.path("fleet_file", None)
    if frontend == "pyinfra" and (fleet_file is None or not fleet_file.is_file()):
        raise section.error(
            "fleet_file", f"{fleet_file or 'not set'} is not a file", "the *.depmirror.yml the pyinfra frontend reads"
        )
    inventory_raw = section.data.get("inventory", [])
    if isinstance(inventory_raw, str):
        inventory_raw = [inventory_raw]
    if not isinstance(inventory_raw, list) or not all(isinstance(i, str) and i for i in inventory_raw):
        raise section.error("inventory", "must be a path or a list of paths")
    inventory = tuple((Path(section.file).parent / i).resolve() for i in inventory_raw) or action.inventory
    if frontend == "ansible" and not inventory:
        raise section.error("inventory", "is required for the ansible frontend", "or set action.inventory")
    playbook = section.path("playbook", None) or action.playbook.parent / "adjust.yml"
    if frontend == "ansible" and not playbook.is_file():
        raise section.error("playbook", f"{playbook} does not exist", "point it at playbooks/adjust.yml")
    template = None
    if frontend == "awx":
        if action.awx is None:
            raise section.error("frontend", "awx needs action.kind awx (its url and token)", "or use pyinfra")
        template = section.integer("awx_job_template_id", 0, 1)
    ssh = section.section("ssh")
    fast = action.fast_path.ssh if action.fast_path is not None else SshOptions()
    health = top.section("health").data.get("options") or {}
    default_url = (action.fast_path.prometheus_url if action.fast_path else "") or str(
        health.get("prometheus_url") or ""
    )
    url = section.text("prometheus_url", default_url)
    if url and not url.startswith(("http://", "https://")):
        raise section.error("prometheus_url", f"must be an http(s) URL, got {url!r}")
    return ReconcileConfig(
        enabled=True,
        frontend=frontend,
        graph=graph,
        interval_s=section.number("interval_seconds", 30.0, 1.0),
        min_gap_s=section.number("min_gap_seconds", 60.0, 0.0),
        timeout_s=section.number("timeout_seconds", 600.0, 1.0),
        fleet_file=fleet_file,
        inventory=inventory,
        playbook=playbook,
        awx_job_template_id=template,
        ssh=SshOptions(
            user=ssh.text("user", fast.user),
            key_file=str(ssh.path("key_file", None) or "") or fast.key_file,
            known_hosts=str(ssh.path("known_hosts", None) or "") or fast.known_hosts,
            port=ssh.integer("port", fast.port, 1, 65535),
            connect_timeout_s=ssh.number("connect_timeout_seconds", 5.0, 1.0),
            become=ssh.boolean("become", fast.become),
        ),
        prometheus_url=url,
        prometheus_timeout_s=section.number("prometheus_timeout_seconds", 2.0, 0.1),
    )


def _health(health: _Reader) -> HealthConfig:
    checker = health.text("checker", "none")
    if checker != "none" and ":" not in checker:
        raise health.error("checker", f"is {checker!r}", "use none or module.path:factory")
    options = health.data.get("options", {})
    if not isinstance(options, dict):
        raise health.error("options", "must be a mapping")
    return HealthConfig(checker=checker, options=options)
