#!/usr/bin/env bash
# Runs `ansible-test sanity` on exactly what `ansible-galaxy collection build` ships, laid out as
# ansible_collections/depmirror/mirroring (ansible-test refuses any other layout). The library in src/ is
# checked by ruff and mypy instead: it is a Python package, not collection content.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
out=build/sanity
root=$out/ansible_collections/depmirror/mirroring
rm -rf "$out" && mkdir -p "$root"
ansible-galaxy collection build --force --output-path "$out" . >/dev/null
tar -xzf "$out"/depmirror-mirroring-*.tar.gz -C "$root"
rm -f "$root/MANIFEST.json" "$root/FILES.json"
# The library ships in the tarball for execution environments, but it is a Python package with its own
# checks (ruff, mypy); ansible-test's rules are for plugins and roles.
rm -rf "$root/src"
cp galaxy.yml "$root/"
[ -d tests/sanity ] && mkdir -p "$root/tests" && cp -r tests/sanity "$root/tests/"
cd "$root"
# ansible-test needs a git work tree or it walks everything; a throwaway one keeps its file list exact.
git init -q . && git add -A >/dev/null
ansible-test sanity --python 3.11 --color no "$@"
