#!/usr/bin/env bash
# `make ee`: the collection's Execution Environment, built here, and a job run inside it against the lab the
# way AWX runs one (ansible-runner with process isolation: the job in a container of the image).
#   1. make dist: the library's wheel and the collection tarball (dist/).
#   2. A local base image: the lab's Debian 12 minbase + python3, pip, ansible-core 2.19, ansible-runner
#      (the official EE base images live in a registry out of reach here; docs/awx.md names them).
#   3. ansible-builder create + build (v3 schema): the collection from its tarball, and through the
#      collection's own meta/execution-environment.yml the library, from the wheel (PIP_FIND_LINKS).
#   4. Under the lab lock: the lab up, `adjust.yml --check` in the image via ansible-runner
#      --process-isolation, the project being extensions/awx/project (thin playbooks importing the
#      collection's by FQCN, as AWX syncs it), then the lab down.
# Prints and writes build/ee/result.json: seconds per step, the image size, the job's status.
# Not in CI: it builds images over the network (Debian's mirror, PyPI) and takes minutes on 2 cores.
# Podman runs with the lab's CONTAINERS_CONF (runc, ulimits) and never on podman's default network:
# builds and the job use --network host (lab-recipe.md).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
export CONTAINERS_CONF=$PWD/lab/containers.conf
OUT=$PWD/build/ee
BASE=localhost/depmirror-ee-base:latest
IMAGE=localhost/depmirror-ee:latest
LOCK=/tmp/depmirror-lab.lock
declare -A took

step() { # step NAME CMD...: runs CMD, records its seconds
    local name=$1 start
    shift
    start=$(date +%s.%N)
    "$@"
    took[$name]=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
    echo "== $name: ${took[$name]} s" >&2
}

# --job-only: run the job again in the image built before (the figures then miss the build steps).
if [ "${1:-}" = --job-only ]; then
    took[dist]=0 took[base_image]=0 took[ee_build]=0
    rm -rf "$OUT/job"
else
    rm -rf "$OUT" && mkdir -p "$OUT"
    step dist bash scripts/dist.sh "$OUT/dist" >/dev/null
fi

base_image() {
    # The lab's debootstrap minbase (built once by the lab; built here if missing).
    podman image exists localhost/depmirror-lab-base:latest ||
        python -c 'import depmirror_lab as lab, depmirror_lab.image as image; image.build_image(lab.lab_paths())'
    mkdir -p "$OUT/base"
    # ansible-builder's scripts speak dnf ("$PKGMGR install -y PKGS", "$PKGMGR clean all"): this speaks apt.
    cat >"$OUT/base/ee-pkgmgr" <<'EOF'
#!/bin/sh
set -e
case "$1" in
  install) shift; apt-get update -qq
           exec apt-get install -y --no-install-recommends $(printf '%s\n' "$@" | grep -v '^-') ;;
  clean) apt-get clean; rm -rf /var/lib/apt/lists/* ;;
  *) exec apt-get "$@" ;;
esac
EOF
    # Behind a TLS-intercepting proxy pip needs its CA: EE_CA_BUNDLE (default: pip's own PIP_CERT) is
    # added to the image's trust store, for pip here and in ansible-builder's stages.
    local ca=${EE_CA_BUNDLE:-${PIP_CERT:-}}
    if [ -n "$ca" ]; then cp "$ca" "$OUT/base/extra-ca.crt"; else : >"$OUT/base/extra-ca.crt"; fi
    cat >"$OUT/base/Containerfile" <<'EOF'
FROM localhost/depmirror-lab-base:latest
ENV DEBIAN_FRONTEND=noninteractive PIP_BREAK_SYSTEM_PACKAGES=1
RUN apt-get update -qq && apt-get install -y --no-install-recommends python3 python3-pip openssh-client \
    ca-certificates && rm -rf /var/lib/apt/lists/*
COPY extra-ca.crt /usr/local/share/ca-certificates/extra-ca.crt
RUN update-ca-certificates >/dev/null
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m pip install --no-cache-dir 'ansible-core>=2.19,<2.20' 'ansible-runner>=2.4,<2.5'
COPY ee-pkgmgr /usr/local/bin/ee-pkgmgr
RUN chmod 0755 /usr/local/bin/ee-pkgmgr
EOF
    podman build --network host -q -t "$BASE" "$OUT/base" >/dev/null
}
[ "${1:-}" = --job-only ] || step base_image base_image

ee_build() {
    local tarball wheel
    tarball=$(ls "$OUT"/dist/depmirror-mirroring-*.tar.gz)
    wheel=$(ls "$OUT"/dist/depmirror_mirroring-*.whl)
    mkdir -p "$OUT/def/files"
    cp "$tarball" "$wheel" "$OUT/def/files/"
    cat >"$OUT/def/requirements.yml" <<EOF
---
collections:
  - name: /build/files/$(basename "$tarball")
    type: file
EOF
    cat >"$OUT/def/execution-environment.yml" <<'EOF'
---
version: 3
images:
  base_image:
    name: localhost/depmirror-ee-base:latest
dependencies:
  python_interpreter:
    python_path: /usr/bin/python3
  ansible_core:
    package_pip: ansible-core>=2.19,<2.20
  ansible_runner:
    package_pip: ansible-runner>=2.4,<2.5
  galaxy: requirements.yml
additional_build_files:
  - src: files
    dest: files
additional_build_steps:
  # additional_build_files land in the context's _build/ only: every stage starts from base, so copy them there.
  prepend_base:
    - COPY _build/files /build/files
  # The collection's meta/ee-requirements.txt pins depmirror-mirroring; pip takes it from the shipped wheel.
  prepend_builder:
    - ENV PIP_FIND_LINKS=/build/files
  prepend_final:
    - ENV PIP_FIND_LINKS=/build/files
options:
  package_manager_path: /usr/local/bin/ee-pkgmgr
  skip_pip_install: true
EOF
    ansible-builder create -f "$OUT/def/execution-environment.yml" -c "$OUT/context" >/dev/null
    ansible-builder build -f "$OUT/def/execution-environment.yml" -c "$OUT/context" -t "$IMAGE" \
        --container-runtime podman --extra-build-cli-args '--network host' -v 1 >"$OUT/build.log" 2>&1 ||
        { tail -40 "$OUT/build.log" >&2; exit 1; }
}
[ "${1:-}" = --job-only ] || step ee_build ee_build

job() {
    local data=$OUT/job
    mkdir -p "$data/inventory" "$data/env"
    cp -r extensions/awx/project "$data/project"
    cp inventories/lab/hosts.yml "$data/inventory/hosts.yml"
    printf 'plugin: depmirror.mirroring.graph\ngraph: ../project/graph.yml\n' >"$data/inventory/fleet.depmirror.yml"
    # The lab inventory names its key and known_hosts by absolute path: the same path inside the job.
    # --user=0: ansible-builder's image runs as uid 1000, which AWX maps (rootless podman, or the pod's
    # fsGroup) to the owner of the job's directory; with rootful podman here that directory is root's.
    ansible-runner run "$data" -p playbooks/adjust.yml --cmdline=--check \
        --process-isolation --process-isolation-executable podman --container-image "$IMAGE" \
        --container-option=--network=host --container-option=--user=0 \
        --container-volume-mount "$PWD/lab/.state/ssh:$PWD/lab/.state/ssh:ro" \
        --rotate-artifacts 1 -j >"$OUT/job-events.jsonl" 2>"$OUT/job.stderr" || true
    cat "$data"/artifacts/*/status >"$OUT/job-status"
}
lab_job() {
    (
        flock -w 1800 9
        date +%s.%N >"$OUT/t-locked"  # waiting for other sessions' lab runs is not the EE's time
        trap 'depmirror lab down >/dev/null 2>&1 || true' EXIT
        depmirror lab up >/dev/null
        date +%s.%N >"$OUT/t-lab-up"
        job
        date +%s.%N >"$OUT/t-job-done"
    ) 9>"$LOCK"
}
step lab_job lab_job

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
status=$(cat "$OUT/job-status")
python3 - "$OUT" "$size" "$status" "${took[dist]}" "${took[base_image]}" "${took[ee_build]}" <<'EOF'
import json, sys
from pathlib import Path
out, size, status, *secs = sys.argv[1:]
t = {name: float(Path(out, f"t-{name}").read_text()) for name in ("locked", "lab-up", "job-done")}
result = {
    "image": "localhost/depmirror-ee:latest",
    "image_size_mb": round(int(size) / 1e6, 1),
    "job": "adjust.yml --check on the lab, ansible-runner --process-isolation (podman)",
    "job_status": status,
    "seconds": {
        **dict(zip(("dist", "base_image", "ee_build"), map(float, secs))),
        "lab_up": round(t["lab-up"] - t["locked"], 1),
        "job": round(t["job-done"] - t["lab-up"], 1),
    },
}
Path(out, "result.json").write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps(result, indent=2))
EOF
[ "$status" = successful ]
