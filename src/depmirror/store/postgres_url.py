"""A PostgreSQL store URL: what libpq connects with, and what may be shown (never the password).

The password may be in the URL (`postgresql://user:secret@host/db`, or `?password=`), in $PGPASSWORD or in
libpq's password file ($PGPASSFILE, else ~/.pgpass): libpq reads the last two itself, so depmirror never
sees them. What depmirror shows (`Store.url`, every StoreError) is the URL without its password.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict

from depmirror.store.base import StoreError

SCHEMES = ("postgresql", "postgres")
# Query parameters libpq takes that hold a secret.
_SECRET_PARAMS = frozenset({"password", "sslpassword"})
_HIDDEN = "***"
_URL_FIX = "write postgresql://USER@HOST:PORT/DATABASE (password in $PGPASSFILE or $PGPASSWORD)"


@dataclass(frozen=True)
class PostgresURL:
    """`raw` goes to libpq only; `shown` goes everywhere else."""

    raw: str
    shown: str
    secrets: tuple[str, ...]
    user: str | None
    database: str | None

    def scrub(self, text: str) -> str:
        """`text` with every password of this URL replaced, as typed and percent-encoded."""
        for secret in self.secrets:
            text = text.replace(secret, _HIDDEN)
        return text

    def error(self, problem: str, fix: str = "") -> StoreError:
        return StoreError(self.shown, self.scrub(problem), self.scrub(fix))


def parse(url: str) -> PostgresURL:
    """Split `url` into what libpq reads and what may be shown; StoreError if libpq cannot read it."""
    typed = _userinfo_password(url)
    secrets = {typed, unquote(typed)} if typed else set()
    shown = _without_password(url)
    unsafe = sorted(set(typed) & set("@/?#"))
    if unsafe:
        # libpq would end the password there and take the rest for the host, port or database (and echo it).
        refused = PostgresURL(url, _hide(shown, secrets), _longest_first(secrets), None, None)
        raise refused.error(
            f"the password in the URL has a raw {unsafe[0]!r}",
            "percent-encode it (@ is %40, / is %2F), or move the password to $PGPASSFILE",
        )
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error as error:
        refused = PostgresURL(url, _hide(shown, secrets), _longest_first(secrets), None, None)
        raise refused.error(f"not a PostgreSQL URL libpq can read: {_one_line(error)}", _URL_FIX) from None
    for name in _SECRET_PARAMS:
        value = params.get(name)
        if value:
            secrets.add(str(value))
    user = params.get("user")
    database = params.get("dbname")
    return PostgresURL(
        raw=url,
        shown=_hide(shown, secrets),
        secrets=_longest_first(secrets),
        user=None if user is None else str(user),
        database=None if database is None else str(database),
    )


def _userinfo_password(url: str) -> str:
    """The password of `scheme://user:password@host...` as typed (maybe percent-encoded), up to the last @
    before the query string, so that a raw / or @ in it is caught rather than taken for the host."""
    rest = url.split("://", 1)[-1].split("?", 1)[0]
    userinfo, at, _ = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return ""
    return userinfo.split(":", 1)[1]


def _hide(text: str, secrets: set[str]) -> str:
    for secret in _longest_first(secrets):
        text = text.replace(secret, _HIDDEN)
    return text


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    head, question, query = rest.partition("?")
    userinfo, at, after = head.rpartition("@")
    if at:
        user = userinfo.split(":", 1)[0]
        head = f"{user}@{after}" if user else after
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(name.lower() in _SECRET_PARAMS for name, _ in pairs):
        query = urlencode([(name, value) for name, value in pairs if name.lower() not in _SECRET_PARAMS])
    return f"{scheme}://{head}{question if query else ''}{query}"


def _longest_first(secrets: set[str]) -> tuple[str, ...]:
    return tuple(sorted((s for s in secrets if s), key=len, reverse=True))


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
