"""`depmirror switchover` when the runner cannot answer: one line naming the flag, exit 2, no traceback.
(Against a running runner: tests/integration/test_runner_api.py.)"""

from __future__ import annotations

import pytest
from tests.fakes.webhook import free_port

from depmirror.cli.main import main


@pytest.mark.parametrize(
    ("runner", "says"),
    [
        ("ftp://127.0.0.1/", "is not an http(s) URL"),
        ("{{ 7*7 }}", "is not an http(s) URL"),
        ("http://127.0.0.1:{port}", "cannot reach the runner"),
    ],
)
def test_an_unreachable_or_bad_runner_is_one_line(runner: str, says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["switchover", "payments", "--dry-run", "--runner", runner.format(port=free_port())]) == 2
    err = capsys.readouterr().err
    assert err.startswith("depmirror: error:") and "--runner" in err and says in err and "Traceback" not in err
