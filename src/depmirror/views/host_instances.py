"""What each VM should run or stop, from the plan: the `mirror` role's inputs, one item per instance."""

from __future__ import annotations

from typing import Any


def instances_for_host(plan: dict[str, Any], host: str) -> list[dict[str, Any]]:
    """The instances `host` should run, primaries first (a Redis replica needs its primary up)."""
    found = []
    for item in plan.get("dependencies", []):
        primary = item.get("primary") or {}
        for instance in item.get("instances", []):
            if instance["host"] != host:
                continue
            found.append(
                {
                    "dependency": item["name"],
                    "kind": item["kind"],
                    "port": instance.get("port") or item["port"],
                    "role": instance["role"],
                    "status": instance.get("status"),
                    "command": (item.get("deploy") or {}).get("command") or "",
                    "health_path": (item.get("deploy") or {}).get("health_path") or "/",
                    "primary_address": primary.get("address") or "",
                    "primary_port": primary.get("port") or 0,
                    "synchronous": bool(item.get("synchronous", False)),
                }
            )
    return sorted(found, key=lambda i: (i["role"] != "primary", i["dependency"]))


def decommissions_for_host(plan: dict[str, Any], host: str) -> list[dict[str, Any]]:
    """The instances on `host` that the plan takes away (from a kept dependency or a removed one)."""
    kinds = {item["name"]: item["kind"] for item in plan.get("dependencies", [])}
    ports = {item["name"]: item["port"] for item in plan.get("dependencies", [])}
    actions = [
        {"dependency": item["name"], **action}
        for item in plan.get("dependencies", [])
        for action in item.get("actions", [])
    ]
    actions += list(plan.get("removed", []))
    return [
        {
            "dependency": a["dependency"],
            "kind": kinds.get(a["dependency"], "tcp"),
            "port": ports.get(a["dependency"], 0),
            "role": a.get("role") or "mirror",
            "reason": a.get("reason", ""),
        }
        for a in actions
        if a.get("action") == "decommission" and a.get("host") == host
    ]
