#!/usr/bin/env bash
# Sets up everything depmirror's demo and tests need on a fresh Debian 12 machine: Debian packages (when
# root), the .venv with the library and its test tools, and the checkout linked as a collection.
# Safe to run again: each step checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  podman runc debootstrap iproute2 openssh-client openssl
  nginx-light libnginx-mod-stream redis-server
  prometheus prometheus-alertmanager prometheus-blackbox-exporter
  graphviz shellcheck
  postgresql-15
  openjdk-17-jre-headless
)
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

install_debian_packages() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: missing Debian packages: ${missing[*]} (run as root, or: apt-get install ${missing[*]})" >&2
    return 0
  fi
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  # Debian's postinst scripts would start nginx, redis, prometheus and postgresql; depmirror starts its own
  # instances on chosen addresses, so keep the packaged services stopped while installing.
  local guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    guard=/usr/sbin/policy-rc.d
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  [ -n "$guard" ] && rm -f "$guard"
  return 0
}

install_venv() {
  local stamp="$VENV/.depmirror-stamp" want
  want=$(cat pyproject.toml lab/pyproject.toml | sha256sum | cut -d' ' -f1)
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip 2>&1 | grep -v 'is ignored' || true
  # The library was distributed as `depmirror` before issue 18 (now `depmirror-mirroring`, same package):
  # drop the old distribution first, or uninstalling it later would take the `depmirror` command along.
  "$VENV/bin/pip" uninstall -q -y depmirror 2>&1 | grep -v 'is ignored\|not installed' || true
  "$VENV/bin/pip" install -q -e '.[test]' 2>&1 | grep -v 'is ignored' || true
  # The lab: a development extra of its own (lab/pyproject.toml), never part of depmirror's wheel.
  "$VENV/bin/pip" install -q --no-deps -e lab/ 2>&1 | grep -v 'is ignored' || true
  "$VENV/bin/python" -c 'import depmirror, depmirror_lab, ansible, ansible_rulebook, pytest' # fail loudly if the install did not work
  echo "$want" > "$stamp"
}

link_collection() {
  # The same link ansible-lint creates; ansible.cfg points collections_path at it.
  local dir=.ansible/collections/ansible_collections/depmirror
  mkdir -p "$dir"
  [ -L "$dir/mirroring" ] || ln -sfn ../../../.. "$dir/mirroring"
}

install_extra_collections() {
  # Galaxy is out of reach here; PyPI's `ansible` wheel carries the collections the tests use:
  # ansible.posix (its json callback reads playbook results) and containers.podman (molecule's driver).
  local dest=.ansible/collections/ansible_collections wheel_dir=.ansible/wheel
  [ -f "$dest/ansible/posix/MANIFEST.json" ] && [ -f "$dest/containers/podman/MANIFEST.json" ] && return 0
  mkdir -p "$wheel_dir"
  "$VENV/bin/pip" download -q --no-deps -d "$wheel_dir" 'ansible==12.3.0' 2>&1 | grep -v 'is ignored' || true
  "$VENV/bin/python" - "$wheel_dir" "$dest" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("ansible-*.whl"))
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        if name.startswith(("ansible_collections/ansible/posix/", "ansible_collections/containers/podman/")):
            archive.extract(name, pathlib.Path(sys.argv[2]).parent)
PY
  rm -rf "$wheel_dir"
}

install_ansible_test_bootstrap() {
  # ansible-test sanity downloads get-pip from a host this machine cannot reach; a cached stand-in that
  # uses ensurepip is what it looks for first (toolchain-notes.md).
  local cache="$HOME/.ansible/test/cache/get_pip_24_2.py"
  [ -f "$cache" ] && return 0
  mkdir -p "$(dirname "$cache")"
  cat > "$cache" <<'PY'
import subprocess, sys
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "--upgrade"] + args)
PY
}

install_debian_packages
install_venv
link_collection
install_extra_collections
install_ansible_test_bootstrap
