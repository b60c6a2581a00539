#!/usr/bin/env bash
# `make dist`: what a release publishes, built into one directory (default dist/):
#   depmirror_mirroring-<version>.tar.gz and -py3-none-any.whl   the library (sdist, and the wheel built from it)
#   depmirror-mirroring-<version>.tar.gz                         the collection, carrying that wheel in wheels/
# The collection's requirements.txt pins the library and points pip at wheels/ (README.md: Installation), so
# `python -m pip install -r <collection>/requirements.txt` works before and after the library is on PyPI.
# Nothing is written into the checkout: the library and the collection are staged in a temporary directory,
# so concurrent builds (`make build`, sanity, tests) never meet each other's egg-info or the shipped wheel.
set -euo pipefail
out=$(realpath -m "${1:-$(dirname "$0")/../dist}")  # relative to where it is called from
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

rm -rf "$out" && mkdir -p "$out"
# The sdist, then the wheel from the sdist (not from the checkout): a file missing from the sdist shows up as
# a broken wheel here, not on a user's machine. The library's sources are what pyproject.toml names.
mkdir -p "$stage/library"
tar -c --exclude='*.egg-info' --exclude=__pycache__ pyproject.toml README.md LICENSE src | tar -x -C "$stage/library"
python -m build --outdir "$out" "$stage/library" >"$stage/build.log" 2>&1 || { cat "$stage/build.log" >&2; exit 1; }
wheel=$(ls "$out"/depmirror_mirroring-*-py3-none-any.whl)

root=$stage/ansible_collections/depmirror/mirroring
mkdir -p "$root/wheels"
ansible-galaxy collection build --force --output-path "$stage" . >/dev/null
tar -xzf "$stage"/depmirror-mirroring-*.tar.gz -C "$root"
rm -f "$stage"/depmirror-mirroring-*.tar.gz "$root/MANIFEST.json" "$root/FILES.json"
cp galaxy.yml "$root/"
cp "$wheel" "$root/wheels/"
ansible-galaxy collection build --force --output-path "$out" "$root" >/dev/null
ls -1 "$out"
