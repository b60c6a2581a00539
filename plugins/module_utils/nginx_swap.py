# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write an nginx release, check it, swap it in and reload: the one implementation of the hot path.

Standard library only and no Ansible imports, because two callers run it on the load balancer: the
nginx_release module (through AnsiballZ), and the runner's fast path, which sends this file's source over
SSH and runs it with the LB's python3. Commands run through the caller's `run(argv) -> (rc, out, err)`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile

DEFAULTS = {
    "files": {},
    "nginx_conf": "/etc/nginx/nginx.conf",
    "service": "nginx",
    "validate": "nginx -t -q -c %s",
}


class SwapError(Exception):
    def __init__(self, msg, result):
        super().__init__(msg)
        self.msg = msg
        self.result = result


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _write_atomically(path, content):
    fd, temp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".depmirror-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def _reload(run, service):
    # reload-or-restart also starts an nginx that is not running, as the full role's "started" task would.
    return run(["systemctl", "reload-or-restart", service])


def swap_release(params, run, check_mode=False, diff=False):
    """The result dict (changed, release, reloaded[, diff]); SwapError when nothing new may be served."""
    params = dict(DEFAULTS, **{k: v for k, v in params.items() if v is not None})
    release, nginx_conf, content = params["release"], params["nginx_conf"], params["content"]
    live = _read(nginx_conf)
    stale = {name: str(text) for name, text in params["files"].items()
             if _read(os.path.join(release, name)) != str(text)}
    changed = live != content or bool(stale)
    result = {"changed": changed, "release": release, "reloaded": False}
    if diff:
        result["diff"] = {"before": live or "", "after": content,
                          "before_header": nginx_conf, "after_header": nginx_conf}
    if not changed or check_mode:
        return result

    created = not os.path.isdir(release)
    os.makedirs(release, mode=0o755, exist_ok=True)
    for name, text in stale.items():
        _write_atomically(os.path.join(release, name), text)
    if live == content:
        return result

    fd, candidate = tempfile.mkstemp(dir=os.path.dirname(nginx_conf), prefix=".depmirror-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
    os.chmod(candidate, 0o644)
    rc, out, err = run(shlex.split(params["validate"].replace("%s", shlex.quote(candidate))))
    if rc != 0:
        # A rejected release leaves nothing behind that this call made.
        os.unlink(candidate)
        if created:
            shutil.rmtree(release, ignore_errors=True)
        said = (err or out).strip() or "(no output)"
        raise SwapError(f"nginx -t rejected release {release}, so the live configuration was kept. "
                        f"nginx said: {said}", result)
    os.replace(candidate, nginx_conf)

    rc, out, err = _reload(run, params["service"])
    if rc != 0:
        last_good = _read(params["last_good"])
        if last_good is None:
            raise SwapError(f"nginx did not reload with release {release} ({(err or out).strip()}) and there is "
                            f"no last good configuration at {params['last_good']}", result)
        _write_atomically(nginx_conf, last_good)
        _reload(run, params["service"])
        raise SwapError(f"nginx did not reload with release {release} ({(err or out).strip()}); the last good "
                        "configuration was restored and is live.", result)
    _write_atomically(params["last_good"], content)
    result["reloaded"] = True
    return result
