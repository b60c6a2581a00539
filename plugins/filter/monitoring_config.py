# Copyright: (c) 2026, depmirror developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
name: monitoring_config
short_description: Prometheus alert rules, probe targets and scrape jobs for a depmirror graph
version_added: 0.1.0
description:
  - Loads the dependency graph and returns what the C(monitoring) role writes for Prometheus, computed by the
    depmirror library so that the alert thresholds are the ones the planner uses (the graph's SLOs).
  - C(rules) is a Prometheus rule file (one group per dependency; alerts C(DepmirrorPrimaryDown) with
    C(action=rollback), C(DepmirrorInstanceDown), C(DepmirrorLatencyOverSlo), C(DepmirrorErrorRatioOverSlo),
    C(DepmirrorHealthUnknown)), C(targets) the blackbox file_sd target groups (one per instance, labelled
    C(dependency), C(host), C(zone), C(role), C(instance)), C(scrape_configs) the probe and exporter jobs.
  - With O(runner_targets_url) the probe job discovers its targets from the depmirror runner's
    C(GET /api/v1/targets) (C(http_sd_configs), the token read from O(runner_targets_token_file)) instead of
    O(targets_file); C(targets) is still returned.
author:
  - depmirror developers (@depmirror)
extends_documentation_fragment:
  - depmirror.mirroring.requirements
options:
  _input:
    description: Path of the dependency graph file.
    type: path
    required: true
  instances:
    description:
      - The instances to probe, as a list of dicts with C(dependency), C(host) (the VM's inventory name) and
        C(role) (C(primary), C(mirror) or C(standby)), or the plan returned by M(depmirror.mirroring.plan).
    type: raw
    required: true
  interval:
    description: Scrape and evaluation interval (a Prometheus duration); alert C(for:) spans N samples of it.
    type: str
    default: 5s
  blackbox_address:
    description: C(host:port) of the blackbox exporter that Prometheus asks to probe.
    type: str
    default: 127.0.0.1:9115
  targets_file:
    description: Absolute path of the file_sd JSON file the probe job reads (unless O(runner_targets_url) is set).
    type: str
    required: true
  runner_targets_url:
    description:
      - The runner's C(/api/v1/targets) URL as Prometheus reaches it; empty to read O(targets_file) (file_sd).
      - Refused with whitespace, control characters, credentials or a fragment in it, and as plain C(http) to a
        host that is not loopback unless O(runner_targets_allow_http).
    type: str
    default: ""
  runner_targets_token_file:
    description:
      - Absolute path, on the Prometheus host, of a file holding a runner API token with the C(read) scope,
        rendered as C(authorization.credentials_file) (the token itself never enters prometheus.yml).
      - Required when the runner is not on loopback.
    type: str
    default: ""
  runner_targets_ca_file:
    description:
      - Absolute path of the CA certificate that signed the runner's certificate (C(tls_config.ca_file)).
      - Only with an C(https) O(runner_targets_url).
    type: str
    default: ""
  runner_targets_allow_http:
    description:
      - Accept a plain C(http) O(runner_targets_url) to a host that is not loopback.
      - The token then crosses the network in clear text; only for a network nothing else reaches.
    type: bool
    default: false
"""

EXAMPLES = r"""
---
- name: Compute the monitoring configuration from the graph
  ansible.builtin.set_fact:
    _monitoring: >-
      {{ 'inventories/example/graph.yml' | depmirror.mirroring.monitoring_config(
           instances=[{'dependency': 'payments-api', 'host': 'vm-a1', 'role': 'primary'}],
           interval='5s', targets_file='/srv/monitoring/targets/depmirror.json') }}

- name: Compute it with the probe targets discovered from the runner (http_sd_configs)
  ansible.builtin.set_fact:
    _monitoring: >-
      {{ 'inventories/example/graph.yml' | depmirror.mirroring.monitoring_config(
           instances=[], targets_file='/srv/monitoring/targets/depmirror.json',
           runner_targets_url='https://runner.example:9095/api/v1/targets',
           runner_targets_token_file='/etc/prometheus/depmirror-read.token',
           runner_targets_ca_file='/etc/prometheus/depmirror-ca.pem') }}
"""

RETURN = r"""
_value:
  description: C(rules) (dict, a rule file), C(targets) (list of file_sd target groups), C(scrape_configs) (list).
  type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.depmirror.mirroring.plugins.plugin_utils.library_install import missing_library

try:
    from depmirror.errors import DepmirrorError
    from depmirror.graph.load import load_graph
    from depmirror.health.rules import monitoring_config as _monitoring_config
    from depmirror.health.runner_discovery import runner_targets_sd
except ImportError as _import_error:
    DEPMIRROR_IMPORT_ERROR = _import_error
else:
    DEPMIRROR_IMPORT_ERROR = None


def monitoring_config(
    graph,
    instances,
    targets_file,
    interval="5s",
    blackbox_address="127.0.0.1:9115",
    runner_targets_url="",
    runner_targets_token_file="",
    runner_targets_ca_file="",
    runner_targets_allow_http=False,
):
    if DEPMIRROR_IMPORT_ERROR is not None:
        raise AnsibleFilterError(missing_library()) from DEPMIRROR_IMPORT_ERROR
    runner_targets = _runner_targets(
        runner_targets_url, runner_targets_token_file, runner_targets_ca_file, runner_targets_allow_http
    )
    for name, value in (("graph", graph), ("targets_file", targets_file), ("blackbox_address", blackbox_address)):
        if not isinstance(value, str) or not value:
            raise AnsibleFilterError(f"monitoring_config: {name} must be a non-empty string, got {value!r}")
    if not isinstance(interval, (str, int, float)) or isinstance(interval, bool):
        raise AnsibleFilterError(f"monitoring_config: interval must be a duration such as 5s, got {interval!r}")
    try:
        return _monitoring_config(
            load_graph(graph), instances, interval, blackbox_address, targets_file, runner_targets=runner_targets
        )
    except DepmirrorError as e:
        raise AnsibleFilterError(f"monitoring_config: {e}") from e
    except ValueError as e:
        raise AnsibleFilterError(f"monitoring_config: {e}") from e


def _runner_targets(url, token_file, ca_file, allow_http):
    """The http_sd entry, or None for file_sd; a file or option given without the URL is a mistake, not a no-op."""
    for name, value in (
        ("runner_targets_url", url),
        ("runner_targets_token_file", token_file),
        ("runner_targets_ca_file", ca_file),
    ):
        if not isinstance(value, str):
            raise AnsibleFilterError(f"monitoring_config: {name} must be a string, got {value!r}")
    if not isinstance(allow_http, bool):
        raise AnsibleFilterError(
            f"monitoring_config: runner_targets_allow_http must be true or false, got {allow_http!r}"
        )
    if not url:
        given = [
            name
            for name, value in (
                ("runner_targets_token_file", token_file),
                ("runner_targets_ca_file", ca_file),
                ("runner_targets_allow_http", allow_http),
            )
            if value
        ]
        if given:
            raise AnsibleFilterError(
                f"monitoring_config: {', '.join(given)} given without runner_targets_url: set the runner's "
                "/api/v1/targets URL, or leave them unset to read the targets file"
            )
        return None
    try:
        return runner_targets_sd(url, token_file=token_file, ca_file=ca_file, allow_http=allow_http)
    except ValueError as e:
        raise AnsibleFilterError(f"monitoring_config: {e}") from e


class FilterModule:
    def filters(self):
        return {"monitoring_config": monitoring_config}
