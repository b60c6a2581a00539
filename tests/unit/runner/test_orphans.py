"""Ending playbooks a dead runner left behind, with real processes in sessions of their own (as pexpect
starts ansible-playbook): only processes launched from this runner's work dir, never a reused PID."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from depmirror.runner import orphans

SLEEPER = "import time; time.sleep(60)"


def _launch(work_dir: Path, action_id: str) -> subprocess.Popen[bytes]:
    data_dir = work_dir / action_id
    data_dir.mkdir(parents=True)
    # The data dir on the command line, as ansible-playbook's `-e @<data_dir>/env/extravars` has it.
    process = subprocess.Popen([sys.executable, "-c", SLEEPER, str(data_dir)], start_new_session=True)
    (data_dir / orphans.PID_FILE).write_text(str(process.pid))
    return process


def test_strays_from_this_work_dir_are_ended_and_the_rest_left_alone(tmp_path: Path) -> None:
    work_dir = tmp_path / "runner-work"
    stray = _launch(work_dir, "taken-over")
    known = _launch(work_dir, "still-journaled")
    elsewhere = subprocess.Popen([sys.executable, "-c", SLEEPER], start_new_session=True)
    (work_dir / "reused-pid").mkdir()
    (work_dir / "reused-pid" / orphans.PID_FILE).write_text(str(elsewhere.pid))  # not launched from there
    try:
        ended = orphans.end_strays(work_dir, {"still-journaled"})
        assert set(ended) == {"taken-over"}
        assert ended["taken-over"]["process"] == "ended with SIGTERM"
        assert stray.wait(timeout=5) is not None
        time.sleep(0.2)
        assert known.poll() is None and elsewhere.poll() is None
    finally:
        for process in (stray, known, elsewhere):
            process.kill()
            process.wait(timeout=5)
