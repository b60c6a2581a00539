"""The lab: VM-like hosts (rootful podman + systemd + sshd, one network namespace each) in zones.

`depmirror lab up|down|status|fault|restore` drive it; tests and benchmarks call these functions.
"""

from __future__ import annotations

from depmirror_lab.faults import FAULTS, fault, restore
from depmirror_lab.image import build_image, image_exists, remove_images
from depmirror_lab.lifecycle import DownReport, HostStatus, UpReport, down, status, up
from depmirror_lab.paths import LabPaths, lab_paths
from depmirror_lab.probe import HUNG, OK, REFUSED, UNREACHABLE, probe_ssh, wait_ssh
from depmirror_lab.shape import BRIDGE, CONTROLLER_ADDRESS, HOSTS, LabHost, resolve_target, zones
from depmirror_lab.system import LabError

__all__ = [
    "BRIDGE",
    "CONTROLLER_ADDRESS",
    "FAULTS",
    "HOSTS",
    "HUNG",
    "OK",
    "REFUSED",
    "UNREACHABLE",
    "DownReport",
    "HostStatus",
    "LabError",
    "LabHost",
    "LabPaths",
    "UpReport",
    "build_image",
    "down",
    "fault",
    "image_exists",
    "lab_paths",
    "probe_ssh",
    "remove_images",
    "resolve_target",
    "restore",
    "status",
    "up",
    "wait_ssh",
    "zones",
]
