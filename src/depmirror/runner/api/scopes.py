"""API tokens and their scopes: `read` < `operate` < `admin`, each including the ones before it."""

from __future__ import annotations

from dataclasses import dataclass, field

SCOPES = ("read", "operate", "admin")


def granted(scopes: tuple[str, ...]) -> frozenset[str]:
    """Every scope a token with `scopes` holds: admin may operate and read, operate may read."""
    highest = max((SCOPES.index(scope) for scope in scopes if scope in SCOPES), default=-1)
    return frozenset(SCOPES[: highest + 1])


@dataclass(frozen=True, slots=True)
class ApiToken:
    """One bearer token of the API: `name` is who it is (the history's `created_by`), never the secret."""

    name: str
    token: str = field(repr=False)
    scopes: tuple[str, ...] = ("read",)
