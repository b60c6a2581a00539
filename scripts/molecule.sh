#!/usr/bin/env bash
# Runs the collection's molecule scenarios (extensions/molecule/*/molecule.yml), or the ones named:
#   scripts/molecule.sh [SCENARIO...]
# Each runs `molecule test` on a lab-image container without a network (lab-recipe.md); a failed or
# interrupted scenario is destroyed before the script goes on or stops. Prints how long each step took and
# exits non-zero when any scenario failed. Needs root (rootful podman, like the lab).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
BIN="$ROOT/${VENV:-.venv}/bin"
IMAGE=localhost/depmirror-lab:latest

# molecule runs ansible-config and ansible-playbook from PATH, and the nginx_upstream filter imports the
# depmirror library on the controller: both must be the venv's.
export PATH="$BIN:$PATH"
export CONTAINERS_CONF="$ROOT/lab/containers.conf"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.ansible/collections"
export NO_COLOR=1 ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 PY_COLORS=0

die() { echo "molecule.sh: $*" >&2; exit 2; }

[ "$(id -u)" -eq 0 ] || die "needs root: the scenarios run rootful podman containers, like the lab"
command -v podman >/dev/null || die "podman is not installed (scripts/bootstrap.sh installs it)"
[ -x "$BIN/molecule" ] || die "$BIN/molecule is missing: run make setup"
[ -f "$ANSIBLE_COLLECTIONS_PATH/ansible_collections/containers/podman/MANIFEST.json" ] \
  || die "containers.podman is not under $ANSIBLE_COLLECTIONS_PATH: run make setup"

if ! podman image exists "$IMAGE"; then
  echo "molecule.sh: $IMAGE is missing, building it (about 70 s)"
  "$BIN/depmirror" lab build || die "could not build $IMAGE"
fi

if [ $# -gt 0 ]; then
  scenarios=("$@")
else
  mapfile -t scenarios < <(find extensions/molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' \
    | xargs -n1 basename | sort)
fi
[ ${#scenarios[@]} -gt 0 ] || die "no scenario under extensions/molecule"

current=""
destroy_current() {
  [ -n "$current" ] || return 0
  echo "molecule.sh: destroying what $current left"
  molecule destroy -s "$current" >/dev/null 2>&1 || echo "molecule.sh: molecule destroy -s $current failed" >&2
}
trap 'destroy_current; exit 130' INT
trap 'destroy_current; exit 143' TERM

# Passes molecule's output through and adds how long each step took, after molecule's "Executed" line
# ("INFO     [mirror > converge] Executed: Successful"; "mirror ➜ converge:" with colours on).
time_steps() {
  local line step="" started=0 now
  while IFS= read -r line; do
    printf '%s\n' "$line"
    now=${EPOCHREALTIME/./}
    case $line in
      *" Executing"*)
        step=${line#*"$current"}; step=${step#*[>➜] }; step=${step%%[]:]*}; started=$now ;;
      *" Executed:"*)
        [ -n "$step" ] && printf 'molecule.sh: %s %s took %d.%d s\n' "$current" "$step" \
          $(( (now - started) / 1000000 )) $(( (now - started) % 1000000 / 100000 ))
        step="" ;;
    esac
  done
}

failed=()
summary=()
for scenario in "${scenarios[@]}"; do
  [ -f "extensions/molecule/$scenario/molecule.yml" ] || die "no scenario $scenario under extensions/molecule"
  current=$scenario
  started=${EPOCHREALTIME/./}
  molecule test -s "$scenario" 2>&1 | time_steps
  rc=${PIPESTATUS[0]}
  took=$(( (${EPOCHREALTIME/./} - started) / 1000000 ))
  if [ "$rc" -ne 0 ]; then
    destroy_current
    failed+=("$scenario")
    summary+=("$scenario: FAILED (rc $rc) after ${took} s")
  else
    summary+=("$scenario: passed in ${took} s")
  fi
  current=""
done

printf 'molecule.sh: %s\n' "${summary[@]}"
[ ${#failed[@]} -eq 0 ] || { echo "molecule.sh: failed: ${failed[*]}" >&2; exit 1; }
