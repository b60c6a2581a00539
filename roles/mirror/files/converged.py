# Which planned instances on this VM already are what present.yml would leave behind (tasks/converged.yml).
# Reads the expected state as JSON on stdin and prints {"converged": [...], "differs": {name: why}}; it only
# reads: files, modes, systemctl's answers and one health check per instance. Any doubt is "differs", and
# such an instance goes through the whole role, which repairs or waits as it always did.
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
from urllib.request import urlopen


def file_problem(spec, want_dir):
    try:
        found = os.stat(spec["path"])
    except OSError:
        return f"{spec['path']} is missing"
    if want_dir != stat.S_ISDIR(found.st_mode) or not (want_dir or stat.S_ISREG(found.st_mode)):
        return f"{spec['path']} is not a {'directory' if want_dir else 'file'}"
    if stat.S_IMODE(found.st_mode) != int(spec["mode"], 8):
        return f"{spec['path']} has mode {stat.S_IMODE(found.st_mode):o}, not {spec['mode']}"
    if not want_dir:
        with open(spec["path"], "rb") as handle:
            if hashlib.sha1(handle.read()).hexdigest() != spec["sha1"]:
                return f"{spec['path']} differs from its template"
    return None


def systemctl(verb, unit):
    done = subprocess.run(
        ["systemctl", verb, unit], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10, check=False
    )
    return done.returncode, done.stdout.decode("utf-8", "replace").strip()


def health_problem(instance):
    """The role's wait task, asked once instead of retried."""
    kind, port = instance["kind"], int(instance["port"])
    if kind == "http":
        try:
            with urlopen(f"http://127.0.0.1:{port}{instance['health_path']}", timeout=2) as answer:
                return None if answer.status == 200 else f"answered {answer.status}"
        except Exception as error:  # any failure to answer 200 is a difference
            return f"does not answer 200: {error}"
    if kind == "tcp":
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return None
        except OSError as error:
            return f"does not accept connections: {error}"
    if kind == "redis":
        done = subprocess.run(
            ["redis-cli", "-p", str(port), "info", "replication"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
        text = done.stdout.decode("utf-8", "replace")
        wanted = "role:master" if instance["role"] == "primary" else "master_link_status:up"
        return None if done.returncode == 0 and wanted in text else f"redis is not {wanted}"
    return f"kind {kind} is always deployed by the role"


def problem(instance):
    for spec in instance["dirs"]:
        found = file_problem(spec, True)
        if found:
            return found
    for spec in instance["files"]:
        found = file_problem(spec, False)
        if found:
            return found
    # what systemd_service's state=started and enabled=true accept without a change
    if systemctl("is-enabled", instance["unit"])[0] != 0:
        return f"{instance['unit']} is not enabled"
    if systemctl("is-active", instance["unit"]) != (0, "active"):
        return f"{instance['unit']} is not active"
    return health_problem(instance)


def main():
    converged, differs = [], {}
    for instance in json.load(sys.stdin):
        try:
            found = problem(instance)
        except Exception as error:  # never fail the play: the role decides
            found = f"could not check: {error}"
        if found:
            differs[instance["dependency"]] = found
        else:
            converged.append(instance["dependency"])
    json.dump({"converged": converged, "differs": differs}, sys.stdout)


main()
