"""`depmirror pyinfra ...` as a user types it: bad input is one clear line and exit 2, never a traceback."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from depmirror.cli import main as cli_main
from depmirror.cli import pyinfra as cli_pyinfra

ROOT = Path(__file__).resolve().parents[3]
GRAPH = ROOT / "inventories" / "example" / "graph.yml"


def depmirror(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "depmirror.cli", "pyinfra", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def fleet(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "fleet.depmirror.yml"
    path.write_text(f"plugin: depmirror.mirroring.graph\ngraph: {GRAPH}\nstate_store: {tmp_path / 's.db'}\n{extra}")
    return path


def test_help_lists_the_three_flows() -> None:
    done = depmirror("--help")
    assert done.returncode == 0
    for action in ("adjust", "rollback", "failback"):
        assert action in done.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["adjust", "-i", "/nonexistent/fleet.depmirror.yml"], "/nonexistent/fleet.depmirror.yml: cannot be read"),
        (["adjust", "-i", "{fleet}", "--collection", "/tmp"], "--collection"),
        (["adjust", "-i", "{fleet}", "--connect-timeout", "0"], "--connect-timeout"),
        (
            ["rollback", "-i", "{fleet}", "--dependency", "x", "--failed-instance", "y", "--trigger", "{{ 7*7 }}"],
            "--trigger: is not JSON",
        ),
        (
            ["rollback", "-i", "{fleet}", "--dependency", "x", "--failed-instance", "y", "--trigger", "[1]"],
            "--trigger: is not a JSON object",
        ),
        (["adjust", "-i", "{fleet}", "--limit", "vm-a1,vm-zz"], "--limit: names 'vm-zz', not a host or group"),
        (["adjust", "-i", "{fleet}", "--limit", "vm-a1,,lb1"], "--limit: has an empty name"),
        (["adjust", "-i", "{fleet}", "--limit=--dry-run"], "--limit: names '--dry-run'"),
        (["adjust", "-i", "{fleet}", "--limit", "$(touch /tmp/pwned)"], "--limit: names '$(touch /tmp/pwned)'"),
        # No applied plan in the store yet: the library's own refusal, with its fix.
        (["rollback", "-i", "{fleet}", "--dependency", "ledger", "--failed-instance", "vm-a1"], "no applied plan"),
    ],
)
def test_bad_input_is_one_line_naming_what_to_fix(tmp_path: Path, args: list[str], said: str) -> None:
    done = depmirror(*[a.replace("{fleet}", str(fleet(tmp_path))) for a in args])
    assert done.returncode == 2, done.stderr
    assert said in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("depmirror: error: ")


def test_a_graph_that_does_not_load_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "graph.yml"
    bad.write_text("version: 1\ndependencies: [\n")
    source = tmp_path / "fleet.depmirror.yml"
    source.write_text(f"plugin: graph\ngraph: {bad}\n")
    done = depmirror("adjust", "-i", str(source), "--dry-run")
    assert done.returncode == 2 and str(bad) in done.stderr and "Traceback" not in done.stderr


def test_without_pyinfra_installed_the_command_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:

    real = importlib.util.find_spec
    monkeypatch.setattr(
        cli_pyinfra.importlib.util, "find_spec", lambda name, *a: None if name == "pyinfra" else real(name, *a)
    )
    assert cli_main.main(["pyinfra", "adjust", "-i", "x.depmirror.yml"]) == 2
    assert "pip install 'depmirror-mirroring[pyinfra]'" in capsys.readouterr().err


def test_depmirror_pyinfra_hands_over_before_loading_the_other_commands() -> None:
    """Loading every command's module costs ~0.3 s, a fifth of a no-op adjust (docs/performance.md)."""
    argv = [sys.executable, "-X", "importtime", "-m", "depmirror.cli", "pyinfra", "--help"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and "adjust" in done.stdout
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "depmirror.cli.pyinfra" in loaded
    assert not loaded & {"depmirror.cli.serve", "depmirror.cli.planning", "depmirror.cli.lab"}, loaded
    assert "pyinfra" in cli_main.build_parser().format_help(), "`depmirror --help` still lists the command"
