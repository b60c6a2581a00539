#!/usr/bin/env bash
# `make demo`: the lab's VMs in three zones, the example graph's dependencies mirrored across them and routed
# through nginx on lb1; then the watchers (Prometheus, Alertmanager, the runner), a killed primary, the
# automatic switchover and its record. Leaves the lab up; `make demo-down` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
DEMO=.demo
GRAPH=$DEMO/graph.yml

step() { printf '\n== %s\n' "$*"; }

step "Bringing the lab up: 6 VMs in zone-a/b/c and the load balancer lb1 (the first run builds the image)"
"$BIN/depmirror" lab up

mkdir -p "$DEMO"
step "The demo graph: inventories/example/graph.yml with health.samples 1 (alert on the first failed probe)"
"$BIN/python" - "$GRAPH" <<'PY'
import sys, yaml
graph = yaml.safe_load(open("inventories/example/graph.yml"))
for dependency in graph["dependencies"].values():
    dependency.setdefault("health", {})["samples"] = 1
open(sys.argv[1], "w").write(yaml.safe_dump(graph, sort_keys=False))
PY
cat > "$DEMO/fleet.depmirror.yml" <<YAML
plugin: depmirror.mirroring.graph
graph: graph.yml
state_store: state.db
YAML

step "The replication plan"
"$BIN/depmirror" plan --graph "$GRAPH" --store "$DEMO/state.db"

step "Applying it: playbooks/adjust.yml provisions the mirrors and routes them through nginx on lb1"
start=$(date +%s%N)
"$BIN/ansible-playbook" -i inventories/lab/hosts.yml -i "$DEMO/fleet.depmirror.yml" playbooks/adjust.yml \
  | grep -E '^(PLAY|PLAY RECAP|[a-z0-9-]+ +: ok=)' || true
echo "adjust took $(( ($(date +%s%N) - start) / 1000000 )) ms"

step "Traffic through lb1 (198.18.0.2) reaches every dependency"
"$BIN/python" - "$GRAPH" <<'PY'
import socket, sys, urllib.request
from depmirror.graph.load import load_graph
for dep in load_graph(sys.argv[1]).dependencies.values():
    if dep.kind == "http":
        with urllib.request.urlopen(f"http://198.18.0.2:{dep.port}/", timeout=5) as r:
            answer = r.read().decode()
    else:
        with socket.create_connection(("198.18.0.2", dep.port), timeout=5) as s:
            s.sendall(b"PING\r\n" if dep.kind == "redis" else b"hello\n")
            answer = s.recv(64).decode().strip()
    print(f"  {dep.name:18} {dep.kind:5} :{dep.port}  answered {answer!r}")
PY

step "Starting the watchers: blackbox probes and Prometheus every 1 s, Alertmanager, the runner (fast path)"
"$BIN/depmirror" lab watch --graph "$GRAPH" --store "$DEMO/state.db" \
  -i inventories/lab/hosts.yml -i "$DEMO/fleet.depmirror.yml"

step "Killing the primary of catalog-api (SIGKILL, kept down) with a client looping through lb1"
"$BIN/depmirror" lab failover kill catalog-api

step "The rollback history"
"$BIN/depmirror" history --store "$DEMO/state.db" --limit 8

printf '\nThe lab and its watchers are still running (catalog-api'"'"'s old primary stays down). Try: %s\n' \
  "$BIN/depmirror lab failover hang payments-api | $BIN/depmirror lab status | make demo-down"
