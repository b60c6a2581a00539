"""The `http_sd_configs` entry that points Prometheus's probe job at the runner's GET /api/v1/targets.

Checked here, before it reaches prometheus.yml, so a wrong value stops the monitoring role with a message
naming the field rather than a promtool parse error, no credentials are written into prometheus.yml, and the
read token does not travel in clear text across a network.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from typing import Any
from urllib.parse import SplitResult, urlsplit

_MAX_URL = 2048
# A host name as DNS spells it (an IP address is checked by ipaddress instead).
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def runner_targets_sd(url: str, *, token_file: str = "", ca_file: str = "", allow_http: bool = False) -> dict[str, Any]:
    """`{"url", "authorization"?, "tls_config"?}` for `scrape_configs(runner_targets=...)`; ValueError names
    the field (`runner_targets_url`, `runner_targets_token_file`, `runner_targets_ca_file`) and the fix."""
    parts = _checked_url(url)
    host = parts.hostname or ""
    local = _loopback(host)
    if parts.scheme == "http" and not local and not allow_http:
        raise ValueError(
            f"runner_targets_url {url!r} is plain http to {host!r}, which is not loopback: the read token would "
            "cross the network in clear text; serve the runner with tls: and use https (runner_targets_ca_file "
            "for a private CA), or set runner_targets_allow_http on a network nothing else reaches"
        )
    if ca_file and parts.scheme != "https":
        raise ValueError(f"runner_targets_ca_file is set but runner_targets_url {url!r} is not https: drop one")
    if not token_file and not local:
        raise ValueError(
            f"runner_targets_token_file is empty but {host!r} is not loopback: a runner off loopback requires a "
            "token; write an API token with the read scope into a file Prometheus can read and name it here"
        )
    discovery: dict[str, Any] = {"url": url}
    if token_file:
        discovery["authorization"] = {"type": "Bearer", "credentials_file": _checked_path("token_file", token_file)}
    if ca_file:
        discovery["tls_config"] = {"ca_file": _checked_path("ca_file", ca_file)}
    return discovery


def _checked_url(url: str) -> SplitResult:
    if not isinstance(url, str) or not url:
        raise ValueError(f"runner_targets_url must be a non-empty string, got {url!r}")
    # On the raw string: Python's urlsplit silently drops tab and newline (bpo-43882).
    if len(url) > _MAX_URL or not url.isprintable() or any(c.isspace() for c in url):
        raise ValueError(
            f"runner_targets_url {url[:80]!r} has whitespace or control characters or is over {_MAX_URL} "
            "characters: give the runner's URL, such as https://runner.example:9095/api/v1/targets"
        )
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in 0-65535
    except ValueError:
        raise ValueError(f"runner_targets_url {url!r} has a port that is not a number from 1 to 65535") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"runner_targets_url {url!r} is not an http(s) URL with a host, such as "
            "https://runner.example:9095/api/v1/targets"
        )
    if not (_HOST_NAME.fullmatch(parts.hostname) or _ip(parts.hostname)):
        raise ValueError(f"runner_targets_url {url!r} has a host that is neither a DNS name nor an IP address")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"runner_targets_url {parts.scheme}://...@{parts.hostname} carries credentials, which would be written "
            "into prometheus.yml: drop them and put the read token in runner_targets_token_file"
        )
    if parts.fragment or url.endswith("#"):
        raise ValueError(f"runner_targets_url {url!r} has a #fragment, which is never sent: drop it")
    return parts


def _checked_path(field: str, path: str) -> str:
    name = f"runner_targets_{field}"
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"{name} must be an absolute path on the Prometheus host, got {path!r}")
    if not path.isprintable() or posixpath.basename(path) in ("", ".", ".."):
        raise ValueError(f"{name} {path[:80]!r} has control characters or does not name a file")
    return path


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _loopback(host: str) -> bool:
    address = _ip(host)
    return host == "localhost" or (address is not None and address.is_loopback)
