"""Why a PostgreSQL store cannot be opened or written, as a StoreError naming the URL (never its password)
and the fix.

libpq reports connection failures (server down, authentication, missing database or role) as text with no
SQLSTATE, so those are told apart by libpq's own wording; errors from a running session carry a SQLSTATE.
"""

from __future__ import annotations

import psycopg

from depmirror.store.postgres_url import PostgresURL

_REACH_FIX = "check that PostgreSQL runs and listens there, and the host and port in the URL"
_AUTH_FIX = (
    "check the password: in the URL, $PGPASSWORD, or the line for this host, port, database and user in "
    "$PGPASSFILE (default ~/.pgpass, mode 0600)"
)
_RETRY_FIX = "retry in a few seconds; depmirror reconnects by itself"
_CONNECTION_SQLSTATES = {"08000", "08001", "08003", "08004", "08006", "57P01", "57P02", "57P03"}


def explain(url: PostgresURL, error: Exception, *, busy_timeout_s: float) -> Exception:
    """PostgreSQL's error in words: a StoreError for what is wrong with the store or the server; other
    errors (a query depmirror got wrong, the append-only trigger) come back as they were."""
    text = _one_line(error)
    sqlstate = getattr(error, "sqlstate", None) or ""
    if sqlstate in ("55P03", "57014"):  # lock_not_available, query_canceled (a timeout)
        return url.error(
            f"another session has held a lock on the store's tables for more than {busy_timeout_s:g} s ({text})",
            "find it in pg_stat_activity and wait for it or end it; DEPMIRROR_STORE_BUSY_TIMEOUT sets how long to wait",
        )
    if sqlstate == "25006":
        return url.error(
            "the server is read-only (a standby, or default_transaction_read_only is on)",
            "point the store at the primary (add target_session_attrs=read-write to the URL)",
        )
    if sqlstate == "42501":
        return url.error(
            f"permission denied: {text}", f"grant the user the privileges it needs, or connect as {_owner(url)}"
        )
    if sqlstate == "53100":
        return url.error(f"the server's disk is full: {text}", "free space on the server's data directory")
    if sqlstate == "53300":
        return url.error(
            f"the server refuses more connections: {text}",
            "raise max_connections, or run fewer processes against this store (each keeps up to 4 connections)",
        )
    if isinstance(error, psycopg.OperationalError) and (not sqlstate or sqlstate in _CONNECTION_SQLSTATES):
        return _connection_failure(url, error, text)
    return error


def _connection_failure(url: PostgresURL, error: psycopg.OperationalError, text: str) -> Exception:
    detail = _server_says(text)
    lowered = text.lower()
    if "password authentication failed" in lowered or "authentication failed" in lowered:
        return url.error(f"authentication failed: {detail}", _AUTH_FIX)
    if "no password supplied" in lowered or "fe_sendauth" in lowered:
        return url.error("the server asks for a password and none was given", _AUTH_FIX)
    if "pg_hba.conf" in lowered:
        return url.error(
            f"the server does not let this user in from here: {detail}",
            "add a line for this client, user and database to the server's pg_hba.conf",
        )
    if "role" in lowered and "does not exist" in lowered:
        return url.error(detail, "create the role (createuser) or fix the user in the URL")
    if "database" in lowered and "does not exist" in lowered:
        name = url.database or "DATABASE"
        owner = f"-O {url.user} " if url.user else ""
        return url.error(detail, f"create it (createdb {owner}{name}) or fix the database in the URL")
    if "starting up" in lowered or "shutting down" in lowered or "recovery mode" in lowered:
        return url.error(f"the server is not accepting connections now: {detail}", _RETRY_FIX)
    if "terminating connection" in lowered or "server closed the connection" in lowered or "consuming input" in lowered:
        return url.error(f"lost the connection to the server: {detail}", _RETRY_FIX)
    if "timeout" in lowered:
        return url.error(f"no answer from the server in time: {detail}", _REACH_FIX)
    if "ssl" in lowered:
        return url.error(f"TLS failed: {detail}", "check sslmode and the certificates named in the URL")
    return url.error(f"cannot reach the server: {detail}", _REACH_FIX)


def _server_says(text: str) -> str:
    """libpq's message without its preamble: `connection failed: connection to server at "h", port 5
    failed: FATAL:  database "x" does not exist` -> `database "x" does not exist (server at "h", port 5)`."""
    where = ""
    rest = text.removeprefix("connection failed: ")
    if rest.startswith("connection to server ") and " failed: " in rest:
        head, _, rest = rest.partition(" failed: ")
        where = head.removeprefix("connection to ")
    rest = rest.removeprefix("FATAL: ").removeprefix("ERROR: ")
    rest = rest.split(" Is the server running", 1)[0].strip()  # libpq's hint: the fix says it
    return f"{rest} ({where})" if where else rest


def _owner(url: PostgresURL) -> str:
    return "the store's owner" if url.user is None else f"the store's owner (now {url.user})"


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
