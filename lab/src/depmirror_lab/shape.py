"""The lab's fixed shape: which hosts exist, in which zone, at which address.

Other parts of depmirror (integration tests, benchmarks, the demo) code against these names and
addresses, so they are constants rather than configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from depmirror_lab.system import LabError

BRIDGE = "labbr0"
CONTROLLER_ADDRESS = "198.18.0.1"
PREFIX_LENGTH = 24
IMAGE = "localhost/depmirror-lab:latest"
BASE_IMAGE = "localhost/depmirror-lab-base:latest"
# Every container the lab runs carries this label, so `lab down` finds them even after a crash.
LABEL = "depmirror_lab"
LB_GROUP = "lb"


@dataclass(frozen=True)
class LabHost:
    """One VM-like host: a container with systemd and sshd in its own network namespace."""

    name: str
    address: str
    zone: str | None  # None for hosts outside the zones, such as the load balancer

    @property
    def netns(self) -> str:
        return self.name

    @property
    def container(self) -> str:
        return self.name

    @property
    def veth(self) -> str:
        # The controller-side end of the host's cable; cutting a host off sets this link down.
        return f"lab-{self.name}"

    @property
    def mac(self) -> str:
        """A fixed, locally administered MAC from the address: a recreated host keeps its NIC's identity,
        so the controller's ARP cache never points at a vanished one (that stalls traffic ~30 s)."""
        octets = [int(part) for part in self.address.split(".")]
        return "02:00:" + ":".join(f"{octet:02x}" for octet in octets)

    @property
    def group(self) -> str:
        """The inventory group: zone names with '_' because Ansible group names cannot hold '-'."""
        return self.zone.replace("-", "_") if self.zone else LB_GROUP


HOSTS: tuple[LabHost, ...] = (
    LabHost("vm-a1", "198.18.0.11", "zone-a"),
    LabHost("vm-a2", "198.18.0.12", "zone-a"),
    LabHost("vm-b1", "198.18.0.21", "zone-b"),
    LabHost("vm-b2", "198.18.0.22", "zone-b"),
    LabHost("vm-c1", "198.18.0.31", "zone-c"),
    LabHost("vm-c2", "198.18.0.32", "zone-c"),
    LabHost("lb1", "198.18.0.2", None),
)


def zones() -> list[str]:
    """Zone names in the order the hosts list them."""
    return list(dict.fromkeys(host.zone for host in HOSTS if host.zone))


def host(name: str) -> LabHost:
    for candidate in HOSTS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def resolve_target(target: str) -> list[LabHost]:
    """Hosts named by a fault target: a host name, a zone name (or its group name), or `all`."""
    if target == "all":
        return list(HOSTS)
    matches = [h for h in HOSTS if target in (h.name, h.zone, h.group)]
    if not matches:
        names = ", ".join([h.name for h in HOSTS] + zones() + [LB_GROUP, "all"])
        raise LabError(f"unknown lab host or zone {target!r} (one of: {names})")
    return matches
