"""Alert text is data (issue 14, "Must show", first bullet).

The real runner (`depmirror serve`, act mode, the ansible-runner action) runs a probe playbook
(playbooks/hostile_probe.yml) that uses every extra var the runner passes the way a role does, while the
payloads of tests/fakes/hostile.py arrive in every alert field: posted straight to the webhook, and through a
real Alertmanager. Each payload, in each field, names its own canary file. Whatever the runner does, at the
end: no canary exists, no request got a 5xx, the probe ran once per valid alert and wrote back exactly the
text it was sent, and the only (dependency, instance) pairs ever acted on are known ones; alerts whose
dependency or instance is hostile are recorded as alert_ignored and never reach the playbook.

Each test prints a report (canaries found, statuses, runs, events) before it asserts; read it with `-rP`
or on failure."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.fakes.hostile import LOOKALIKES, PAYLOADS, URL_SAFE, Canaries, fits_fingerprint
from tests.fakes.webhook import free_port

from depmirror.rollback.flow import host_of
from depmirror.store import Event, EventFilter, open_store

VENV_BIN = Path(sys.executable).parent
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
PLAYBOOKS = Path(__file__).parent / "playbooks"
REPO = Path(__file__).resolve().parents[2]
TOKEN = "hostile-input-test-token-5c1e9a7d"
TOKEN_ENV = "DEPMIRROR_RUNNER_TOKEN"
# The most the runner gets to decide and run everything one test sends. A probe run takes ~2 s of CPU; on
# 2 cores shared with another test suite the direct test settled in 57 s (32 runs), the Alertmanager one in
# 21 s (11 runs).
SETTLE_S = 90.0
NOW = datetime.now(UTC).isoformat()

pytestmark = [
    pytest.mark.skipif(
        not (VENV_BIN / "ansible-playbook").exists(), reason="needs ansible-playbook next to the test's Python"
    ),
    # Both tests keep the CPU busy with playbook runs: one after the other, on one xdist worker.
    pytest.mark.xdist_group("hostile"),
]


@dataclass
class Sent:
    """One alert the test sent, and what must become of it."""

    dependency: str
    instance: str
    valid: bool  # a known (dependency, instance): must run the probe; otherwise must be alert_ignored
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    fingerprint: str | None = None  # ours when posted directly; Alertmanager's, looked up, otherwise
    # Every text the notification carried, so that whatever the probe got back must be one of them.
    texts: set[str] = field(default_factory=set)


@dataclass
class Runner:
    """`depmirror serve` in act mode with the probe playbook, in its own directory."""

    root: Path
    canaries: Canaries
    known: dict[str, list[str]]  # dependency -> its instances' hosts
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    statuses: list[tuple[str, int]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def out(self) -> Path:
        return self.root / "probe-out"

    @property
    def store_file(self) -> Path:
        return self.root / "history.db"

    def start(self) -> None:
        project = self.root / "project"
        project.mkdir()
        shutil.copy(PLAYBOOKS / "hostile_probe.yml", project)
        shutil.copytree(PLAYBOOKS / "templates", project / "templates")
        self.out.mkdir()
        (self.root / "cwd").mkdir()
        # The probe publishes the other host of the failed instance's dependency as the new primary.
        peers = {dep: {hosts[0]: hosts[1], hosts[1]: hosts[0]} for dep, hosts in self.known.items()}
        config: dict[str, Any] = {
            "listen": {"host": "127.0.0.1", "port": self.port},
            "auth": {"type": "bearer", "token_env": TOKEN_ENV},
            "store": str(self.store_file),
            "mode": "act",
            "runner_id": "hostile-test",
            "dependencies": self.known,
            "action": {
                "kind": "ansible-runner",
                "playbook": str(project / "hostile_probe.yml"),
                "work_dir": str(self.root / "runner-work"),
                "timeout_seconds": 60,
                "envvars": {"DEPMIRROR_PROBE_OUT": str(self.out), "DEPMIRROR_PROBE_PEERS": json.dumps(peers)},
            },
            "policy": {
                "cooldown_seconds": 0,
                "flap_max_transitions": 1000,
                "on_unknown_health": "delegate",
                "max_concurrent_actions": 4,
            },
            "health": {"checker": "none"},
        }
        config_file = self.root / "runner.yml"
        config_file.write_text(yaml.safe_dump(config))
        depmirror = VENV_BIN / "depmirror"
        command = [str(depmirror)] if depmirror.exists() else [sys.executable, "-m", "depmirror.cli"]
        env = {**os.environ, TOKEN_ENV: TOKEN}
        log = (self.root / "runner.log").open("wb")
        self.process = subprocess.Popen(
            [*command, "serve", "--config", str(config_file)],
            env=env,
            cwd=self.root / "cwd",
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _wait_for(lambda: _request(f"{self.url}/readyz")[0] == 200, 20, "the runner's /readyz", self.log)

    def log(self) -> str:
        return (self.root / "runner.log").read_text(errors="replace")[-4000:]

    def post(self, what: str, body: dict[str, Any]) -> int:
        status, _ = _request(f"{self.url}/alertmanager", body, {"Authorization": f"Bearer {TOKEN}"})
        self.statuses.append((what, status))
        return status

    def get(self, what: str, path: str) -> Any:
        status, body = _request(f"{self.url}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
        self.statuses.append((what, status))
        return body

    def settle(self, timeout: float, sent: list[Sent], received: int = 0) -> str:
        """Wait until `received` alerts have arrived and none is left undecided; say how it ended.

        Stops early once a canary exists and every valid alert's run is over: the test has failed by then,
        and a runner that acts on hostile instances one by one would take minutes to go through them all."""
        began = time.monotonic()
        valid = {alert.dependency for alert in sent if alert.valid}
        store = open_store(self.store_file)
        try:
            while time.monotonic() < began + timeout:
                if _received(self.url) >= received and store.queue_depth() == 0:
                    return f"settled in {time.monotonic() - began:.0f}s"
                if self.canaries.found(deep=(self.canaries.directory,)):
                    acted = {e.dependency for e in store.events(EventFilter(kinds=("rollback",), limit=None))}
                    if valid <= acted:
                        return (
                            f"stopped early ({time.monotonic() - began:.0f}s): canaries appeared, every valid alert ran"
                        )
                time.sleep(0.25)
            return f"NOT settled after {timeout:.0f}s: {store.queue_depth()} alerts undecided"
        finally:
            store.close()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            # Still running playbooks: end them (by pid, this runner's own descendants), then the runner.
            for pid in _descendants(self.process.pid):
                _kill(pid)
            self.process.kill()
            self.process.wait()

    def events(self) -> list[Event]:
        store = open_store(self.store_file)
        try:
            return store.events(EventFilter(limit=None))
        finally:
            store.close()

    def primaries(self) -> dict[str, str]:
        store = open_store(self.store_file)
        try:
            return store.primaries()
        finally:
            store.close()

    def group_keys(self, alerts: list[Sent]) -> None:
        """Add the groupKey each alert arrived with to its texts (Alertmanager builds it from the labels)."""
        store = open_store(self.store_file)
        try:
            for alert in alerts:
                queued = store.latest_alert(alert.dependency, alert.instance)
                if queued is not None:
                    alert.texts.add(queued.group_key)
        finally:
            store.close()


@pytest.fixture
def canaries() -> Iterator[Canaries]:
    # A short directory: a payload used as a fingerprint must fit in 128 characters with its canary path.
    directory = Path(tempfile.mkdtemp(prefix="dmc-"))
    try:
        yield Canaries(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def processes() -> Iterator[list[Runner | subprocess.Popen[bytes]]]:
    started: list[Runner | subprocess.Popen[bytes]] = []
    yield started
    for process in reversed(started):
        if isinstance(process, Runner):
            process.stop()
        elif process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- the tests ------------------------------------------------------------------------------------------
def test_hostile_alerts_posted_to_the_runner_never_run_code(
    tmp_path: Path, canaries: Canaries, processes: list[Any]
) -> None:
    carriers = {f"d{p.index:02d}": p for p in PAYLOADS}
    known = {dep: [f"{dep}-a", f"{dep}-b"] for dep in carriers}
    known["dtrap"] = ["dtrap-a", "dtrap-b"]  # valid dependency, hostile or unknown instances only
    known["dq"] = ["dq-a", "dq-b"]  # alerts the runner must refuse with 400
    runner = Runner(tmp_path, canaries, known)
    processes.append(runner)
    runner.start()

    sent: list[Sent] = []
    # First what must be ignored (so that a runner that acts on it does so early): hostile dependency names,
    # and hostile or unknown instances of a known dependency.
    for payload in PAYLOADS:
        for tag, labels in (
            ("dp", {"alertname": "DependencyDown", "dependency": payload.text(canaries, "d-dp"), "instance": "x-a"}),
            ("it", {"alertname": "DependencyDown", "dependency": "dtrap", "instance": payload.text(canaries, "d-it")}),
        ):
            fingerprint = f"d-{tag}-{payload.index:02d}-{canaries.token}"
            sent.append(Sent(labels["dependency"], labels["instance"], False, labels, fingerprint=fingerprint))
            runner.post(f"{tag} {payload.index}", _notification([_alert(labels, fingerprint=fingerprint)]))
    for number, instance in enumerate(_near_misses("dtrap", other_host="d00-a")):
        labels = {"alertname": "DependencyDown", "dependency": "dtrap", "instance": instance}
        fingerprint = f"d-near-{number:02d}-{canaries.token}"
        sent.append(Sent("dtrap", instance, False, labels, fingerprint=fingerprint))
        runner.post(f"near miss {instance!r}", _notification([_alert(labels, fingerprint=fingerprint)]))

    # Then one valid alert per payload (its own dependency, so each gets its own run), the payload in every
    # other field; and the fields the runner must refuse, each alone in an otherwise valid alert.
    expected_400 = 0
    lookalikes = list(LOOKALIKES)
    for dep, payload in carriers.items():

        def text(tag: str, payload: Any = payload) -> str:
            return str(payload.text(canaries, f"d-{tag}"))

        instance = f"{dep}@{dep}-a" if payload.index % 2 == 0 else f"{dep}-a"
        # A payload too long or unprintable for a fingerprint is refused alone (below); its carrier takes text
        # that YAML would read as another type.
        fingerprint = text("fp") if fits_fingerprint(text("fp")) else lookalikes.pop(0)
        labels = {
            "alertname": text("an"),
            "dependency": dep,
            "instance": instance,
            "severity": "critical",
            "hostile": text("lv"),
            "lookalike": LOOKALIKES[payload.index % len(LOOKALIKES)],
            text("ln"): "a label name",
        }
        annotations = {
            "summary": text("sm"),
            "description": text("ds"),
            "runbook_url": text("rb"),
            text("ak"): "an annotation name",
        }
        body = _notification(
            [_alert(labels, annotations, fingerprint=fingerprint, generator_url=text("gu"))],
            receiver=text("rc"),
            group_key=text("gk"),
            external_url=text("eu"),
            group_labels={"alertname": text("gl")},
            common_labels={"dependency": dep, "severity": text("cl"), text("cn"): "x"},
            common_annotations={"summary": text("ca")},
        )
        sent.append(Sent(dep, instance, True, labels, annotations, fingerprint, texts=_strings(body)))
        runner.post(f"carrier {payload.index} ({payload.name})", body)

        refused = {
            "startsAt": {"starts_at": text("sa")},
            "endsAt": {"ends_at": text("ea")},
            "status": {"status": text("st")},
        }
        if not fits_fingerprint(text("fp")):
            refused["fingerprint"] = {"fingerprint": text("fp")}
        for name, change in refused.items():
            alert_labels = {"alertname": "DependencyDown", "dependency": "dq", "instance": "dq-a"}
            options = {"fingerprint": f"dq-{name}-{payload.index:02d}", **change}
            runner.post(f"{name} {payload.index}", _notification([_alert(alert_labels, **options)]))
            expected_400 += 1

    how = runner.settle(SETTLE_S, sent)
    runner.get("GET /api/v1/events", "/api/v1/events?limit=1000")
    runner.get("GET /metrics", "/metrics")
    runner.stop()
    _judge(runner, sent, how, expected_400=expected_400, roots=(tmp_path,))


@pytest.mark.services
@pytest.mark.skipif(not os.path.exists(ALERTMANAGER), reason="needs Debian's prometheus-alertmanager")
def test_hostile_alerts_through_alertmanager_never_run_code(
    tmp_path: Path, canaries: Canaries, processes: list[Any]
) -> None:
    carriers = {f"a{p.index:02d}": p for p in PAYLOADS[::3]}
    known = {dep: [f"{dep}-a", f"{dep}-b"] for dep in carriers}
    known["atrap"] = ["atrap-a", "atrap-b"]
    runner = Runner(tmp_path / "runner", canaries, known)
    runner.root.mkdir()
    processes.append(runner)
    runner.start()

    am_port = free_port()
    am = f"http://127.0.0.1:{am_port}"
    receiver = PAYLOADS[0].text(canaries, "a-rc")
    am_config = {
        # Every label in the group key: Alertmanager puts the hostile label values into groupKey too.
        "route": {
            "receiver": receiver,
            "group_by": ["..."],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": receiver,
                "webhook_configs": [
                    {
                        "url": f"{runner.url}/alertmanager",
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer", "credentials": TOKEN}},
                    }
                ],
            }
        ],
    }
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(am_config))
    external_url = f"{am}/{URL_SAFE.text(canaries, 'a-eu')}"
    am_log = (tmp_path / "alertmanager.log").open("wb")
    processes.append(
        subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'am'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
                "--web.route-prefix=/",
                f"--web.external-url={external_url}",
            ],
            stdout=am_log,
            stderr=subprocess.STDOUT,
        )
    )
    _wait_for(
        lambda: _request(f"{am}/-/ready")[0] == 200,
        20,
        "Alertmanager",
        lambda: (tmp_path / "alertmanager.log").read_text(errors="replace"),
    )

    every_payload_labels = {f"p{p.index:02d}": p.text(canaries, "a-pl") for p in PAYLOADS}
    every_payload_annotations = {f"p{p.index:02d}": p.text(canaries, "a-pa") for p in PAYLOADS}
    sent: list[Sent] = []
    am_refused: list[str] = []

    def to_alertmanager(what: str, alert: dict[str, Any], urls: list[str]) -> bool:
        for url in urls or [""]:
            body = {**alert, **({"generatorURL": url} if url else {})}
            status, answer = _request(f"{am}/api/v2/alerts", [body])
            if status == 200:
                return True
            am_refused.append(f"{what}: {status} {str(answer)[:120]}")
        return False

    for dep, payload in carriers.items():
        instance = f"{dep}@{dep}-a" if payload.index % 2 == 0 else f"{dep}-a"
        labels = {
            "alertname": payload.text(canaries, "a-an"),
            "dependency": dep,
            "instance": instance,
            "severity": "critical",
            "hostile": payload.text(canaries, "a-lv"),
            **every_payload_labels,
        }
        annotations = {
            "summary": payload.text(canaries, "a-sm"),
            "description": payload.text(canaries, "a-ds"),
            "runbook_url": payload.text(canaries, "a-rb"),
            **every_payload_annotations,
        }
        generator = payload.text(canaries, "a-gu")
        # Alertmanager takes only a URI here (422 otherwise): the raw text, then inside a URL, then quoted.
        urls = [
            generator,
            f"http://prometheus.invalid/graph?g0.expr={generator}",
            f"http://prometheus.invalid/graph?g0.expr={urllib.parse.quote(generator)}",
        ]
        if to_alertmanager(f"carrier {payload.index}", {"labels": labels, "annotations": annotations}, urls):
            texts = {*labels.values(), *labels, *annotations.values(), *annotations, receiver, *urls, external_url}
            sent.append(Sent(dep, instance, True, labels, annotations, texts=texts))
    for payload in PAYLOADS:
        hostile_dep = {"alertname": "DependencyDown", "dependency": payload.text(canaries, "a-dp"), "instance": "x-a"}
        if to_alertmanager(f"dp {payload.index}", {"labels": hostile_dep}, []):
            sent.append(Sent(hostile_dep["dependency"], "x-a", False, hostile_dep))
    instances = [p.text(canaries, "a-it") for p in PAYLOADS[1::4]] + _near_misses("atrap", "a00-a")[:4]
    for instance in instances:
        labels = {"alertname": "DependencyDown", "dependency": "atrap", "instance": instance}
        if to_alertmanager(f"it {instance[:40]!r}", {"labels": labels}, []):
            sent.append(Sent("atrap", instance, False, labels))

    how = runner.settle(SETTLE_S, sent, received=len(sent))
    # Alertmanager's fingerprints: the runner's dedup key, and how events name the alerts they settled.
    _, listed = _request(f"{am}/api/v2/alerts")
    by_labels = {json.dumps(a["labels"], sort_keys=True): a["fingerprint"] for a in listed or []}
    for alert in sent:
        alert.fingerprint = by_labels.get(json.dumps(alert.labels, sort_keys=True))
    runner.group_keys([alert for alert in sent if alert.valid])
    failed = _metric(f"{am}/metrics", "alertmanager_notifications_failed_total", 'integration="webhook"')
    runner.get("GET /api/v1/events", "/api/v1/events?limit=1000")
    runner.stop()
    _judge(
        runner,
        sent,
        how,
        expected_400=0,
        roots=(tmp_path,),
        extra={
            "alertmanager refused (its own validation)": am_refused,
            "alertmanager webhook notifications failed": failed,
        },
    )
    assert failed == 0, f"Alertmanager's webhook to the runner failed {failed} times"


# --- judging --------------------------------------------------------------------------------------------
def _judge(
    runner: Runner,
    sent: list[Sent],
    how: str,
    *,
    expected_400: int,
    roots: tuple[Path, ...],
    extra: dict[str, Any] | None = None,
) -> None:
    canaries = runner.canaries
    found = canaries.found(
        deep=(*roots, canaries.directory),
        shallow=(Path("/tmp"), REPO, REPO / "tests/integration/playbooks", Path.home()),
    )
    events = runner.events()
    by_fingerprint: dict[str, list[Event]] = {}
    for event in events:
        for fingerprint in event.trigger.get("fingerprints", []):
            by_fingerprint.setdefault(fingerprint, []).append(event)
    acted = [e for e in events if e.kind in ("rollback", "failback")]
    unknown_pairs = sorted(
        {
            (e.dependency, e.instance or "")
            for e in acted
            if host_of(e.dependency, e.instance or "") not in runner.known.get(e.dependency, [])
        }
    )
    valid = [s for s in sent if s.valid]
    hostile = [s for s in sent if not s.valid]
    not_ignored = []
    for alert in hostile:
        kinds = [e.kind for e in by_fingerprint.get(alert.fingerprint or "", [])]
        if kinds != ["alert_ignored"]:
            not_ignored.append(f"{alert.dependency[:50]!r} {alert.instance[:50]!r}: {kinds or 'no event'}")
    runs = sorted(runner.out.glob("*.rendered.txt"))
    not_literal: list[str] = []
    not_run: list[str] = []
    primaries = runner.primaries()
    for alert in valid:
        mine = [e for e in by_fingerprint.get(alert.fingerprint or "", []) if e.kind == "rollback"]
        if not mine or mine[0].outcome != "succeeded":
            detail = f"{mine[0].outcome}: {mine[0].reason[:200]}" if mine else "no rollback event"
            not_run.append(f"{alert.dependency}: {detail}")
            continue
        problems = _literal_problems(runner, alert, mine[0])
        not_literal += [f"{alert.dependency}: {problem}" for problem in problems]
        if not problems and primaries.get(alert.dependency) != runner.known[alert.dependency][1]:
            not_literal.append(f"{alert.dependency}: primary is {primaries.get(alert.dependency)!r}, not the peer")
    statuses = Counter(status for _, status in runner.statuses)
    server_errors = [(what, status) for what, status in runner.statuses if status >= 500 or status == 0]
    report = {
        "settled": how,
        "canaries found": len(found),
        "canaries by field": dict(Counter(p.name.split(".")[2] for p in found)),
        "canaries": [p.name for p in found],
        "HTTP statuses": dict(statuses),
        "expected 400 (refused fields)": expected_400,
        "responses >= 500 or no answer": server_errors,
        "alerts sent: valid / hostile": f"{len(valid)} / {len(hostile)}",
        "probe runs (rendered files)": len(runs),
        "events by kind/outcome": dict(Counter(f"{e.kind}/{e.outcome}" for e in events)),
        "acted on unknown (dependency, instance)": [f"{d[:50]!r} {i[:50]!r}" for d, i in unknown_pairs],
        "hostile alerts not (only) alert_ignored": not_ignored,
        "valid alerts without a succeeded run": not_run,
        "runs that did not get the text unchanged": not_literal,
        **(extra or {}),
    }
    text = json.dumps(report, indent=1, ensure_ascii=False, default=str)
    (runner.root / "report.json").write_text(text)
    print(text)

    assert not found, (
        f"{len(found)} canaries appeared: alert text was evaluated ({sorted(report['canaries by field'])})"
    )
    assert not server_errors, f"responses >= 500 (or none): {server_errors}"
    assert statuses[400] == expected_400, f"expected {expected_400} refusals (400), got {dict(statuses)}"
    assert how.startswith("settled"), how
    assert not unknown_pairs, f"acted on unknown pairs: {report['acted on unknown (dependency, instance)']}"
    assert not not_ignored, f"hostile alerts not ignored: {not_ignored}"
    assert not not_run, f"valid alerts without a succeeded probe run: {not_run}"
    assert len(runs) >= len(valid), f"the probe ran {len(runs)} times for {len(valid)} valid alerts"
    assert not not_literal, f"the probe did not get the text unchanged: {not_literal}"


def _literal_problems(runner: Runner, alert: Sent, event: Event) -> list[str]:
    """How the probe's output for this alert's run differs from what the runner passed and the test sent."""
    action_id = event.details.get("action_id", "")
    inputs_file, rendered_file = runner.out / f"{action_id}.inputs.json", runner.out / f"{action_id}.rendered.txt"
    if not inputs_file.exists() or not rendered_file.exists():
        return [f"no probe output for action {action_id}"]
    inputs = json.loads(inputs_file.read_text())
    rendered = rendered_file.read_bytes().decode()  # as written: no newline translation
    problems = []
    fact = inputs.pop("fact")
    if fact != inputs:
        problems.append(f"set_fact changed {sorted(k for k in inputs if fact.get(k) != inputs[k])}")
    # The event records the trigger the runner passed as depmirror_trigger: the play must see exactly that.
    passed, got = event.trigger, inputs["trigger"]
    for key in sorted(set(passed) | set(got)):
        if got.get(key, "(missing)") != passed.get(key, "(missing)"):
            problems.append(f"trigger.{key}: passed {_short(passed.get(key))}, the play got {_short(got.get(key))}")
    sent = {
        "dependency": (inputs["dependency"], alert.dependency),
        "failed_instance": (inputs["failed_instance"], alert.instance),
        "trigger.alertname": (got.get("alertname"), alert.labels["alertname"]),
        "trigger.fingerprint": (got.get("fingerprint"), alert.fingerprint),
    }
    for name in ("labels", "annotations"):
        if name in got:
            sent[f"trigger.{name}"] = (got[name], getattr(alert, name))
    problems += [
        f"{name}: sent {_short(want)}, the play got {_short(value)}"
        for name, (value, want) in sent.items()
        if value != want
    ]
    # Whatever else of the alert the trigger carries (URLs, receiver, ...) must be text that was sent.
    problems += [
        f"never sent: {_short(s)}" for s in _strings(got) if runner.canaries.token in s and s not in alert.texts
    ]
    lines = [f"dependency={alert.dependency}", f"failed_instance={alert.instance}"]
    lines += [f"trigger.{key}={value}" for key, value in passed.items() if isinstance(value, str)]
    for name in ("labels", "annotations"):
        lines += [f"{key}={value}" for key, value in passed.get(name, {}).items()]
    problems += [f"rendered differently: {_short(line)}" for line in lines if line not in rendered]
    return problems


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 90 else text[:87] + "..."


# --- helpers --------------------------------------------------------------------------------------------
def _alert(
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
    *,
    fingerprint: str,
    generator_url: str = "http://prometheus.invalid/graph",
    status: str = "firing",
    starts_at: str = NOW,
    ends_at: str = "0001-01-01T00:00:00Z",
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": labels,
        "annotations": annotations or {"summary": "down"},
        "startsAt": starts_at,
        "endsAt": ends_at,
        "generatorURL": generator_url,
        "fingerprint": fingerprint,
    }


def _notification(
    alerts: list[dict[str, Any]],
    *,
    receiver: str = "depmirror",
    group_key: str = "{}:{}",
    external_url: str = "http://alertmanager.invalid",
    group_labels: dict[str, str] | None = None,
    common_labels: dict[str, str] | None = None,
    common_annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing",
        "receiver": receiver,
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "externalURL": external_url,
        "groupLabels": group_labels or {},
        "commonLabels": common_labels or {},
        "commonAnnotations": common_annotations or {},
        "alerts": alerts,
    }


def _near_misses(dependency: str, other_host: str) -> list[str]:
    """Instances that look almost right: unknown hosts, another dependency's host, stray characters."""
    host = f"{dependency}-a"
    return [
        f"{dependency}@{dependency}-z",
        f"{dependency}-z",
        other_host,
        f"{dependency}@{other_host}",
        f"{dependency}@",
        f"@{host}",
        f"{dependency}@{host}@{dependency}-b",
        f"{dependency}@../{host}",
        f" {host}",
        f"{host}\n",
        f"{host};",
        f"{host}\u200b",
    ]


def _strings(value: Any) -> set[str]:
    """Every string in a JSON value, keys included."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return {s for k, v in value.items() for s in (*_strings(k), *_strings(v))}
    if isinstance(value, list):
        return {s for item in value for s in _strings(item)}
    return set()


def _request(url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            status = int(response.status)
    except urllib.error.HTTPError as error:
        raw, status = error.read(), int(error.code)
    except OSError:
        return 0, None
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def _metric(url: str, name: str, selector: str = "") -> float:
    """The sum of one metric's samples (those whose labels contain `selector`)."""
    status, text = _request(url)
    if status != 200 or not isinstance(text, str):
        return -1.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#") and selector in line
    )


def _received(url: str) -> float:
    return _metric(f"{url}/metrics", "depmirror_runner_alerts_received_total")


def _wait_for(check: Callable[[], bool], timeout: float, what: str, log: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{log()}")


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
