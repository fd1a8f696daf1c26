"""A PostgreSQL ledger's URL: connecting to it, and showing it without its password.

`ledger_db` / `--db` take `postgresql://user@host[:port]/dbname` (or `postgres://`), libpq's own
URL form, so every libpq setting works: the password comes from `PGPASSWORD`, `~/.pgpass`
(`PGPASSFILE`) or the URL itself (`postgresql://user:secret@host/db`, or `?password=`), as libpq
decides; psycopg hands the URL to libpq unchanged. Whatever the ledger logs, writes to its
status file or puts in an error message names the database by `redacted(url)`, never the URL.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from .dialect import is_postgres

CONNECT_TIMEOUT_S = 5  # libpq's connect_timeout: a server gone away must not hold the writer long
_SECRET_PARAMS = {"password", "sslpassword"}


def connect(url: str, **kw):
    """A new psycopg 3 connection to the database at `url` (a postgresql:// URL, with any libpq
    setting; keyword arguments as psycopg.connect's, e.g. autocommit=True). connect_timeout
    defaults to CONNECT_TIMEOUT_S and application_name to "usage-ledger" unless the URL or `kw`
    set them. Raises psycopg.OperationalError when the server cannot be reached or refuses us;
    libpq's messages name host and port, never the password (use `safe_message` to be sure)."""
    import psycopg

    query = dict(parse_qsl(urlsplit(url).query))
    kw.setdefault("connect_timeout", int(query.get("connect_timeout", CONNECT_TIMEOUT_S)))
    if "application_name" not in query:
        kw.setdefault("application_name", "usage-ledger")
    return psycopg.connect(url, **kw)


def _secrets(url: str) -> list[str]:
    if not is_postgres(url):
        return []
    try:
        parts = urlsplit(url)
    except ValueError:  # `[::1/x`: the password is what a user part would hold, if there is one
        userinfo = url.partition("://")[2].partition("/")[0].rpartition("@")[0]
        return [userinfo.partition(":")[2]] if ":" in userinfo else []
    found = [p for p in (parts.password,) if p]
    found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k in _SECRET_PARAMS and v]
    return found


def redacted(url: str) -> str:
    """The URL without its password (in the user part or as `password=`/`sslpassword=`), for
    logs, status files and messages: `postgresql://ledger:s3cret@db:5432/team` ->
    `postgresql://ledger@db:5432/team`. Anything not a postgresql:// URL comes back as it is."""
    if not is_postgres(url):
        return url
    try:
        parts = urlsplit(url)
    except ValueError:  # `[::1/x`: what follows the scheme cannot be told apart, so none of it is shown
        return url.partition("://")[0] + "://(a URL that cannot be read)"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}@{hostport}" if user else hostport
    query = parts.query
    if query:
        pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in _SECRET_PARAMS]
        query = urlencode(pairs, quote_via=quote)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def safe_message(text: str, url: str) -> str:
    """`text` (an error message, say) with every password the URL holds replaced by `***`,
    and the URL itself, if it appears, by its redacted form."""
    if not is_postgres(url):
        return text
    text = text.replace(url, redacted(url))
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


def local_name(url: str) -> str:
    """A file name for this database's local files (the writer's status file and journal, which
    live in the default ledger folder), from its redacted URL: `postgresql://ledger@db:5432/team`
    -> `postgresql-ledger@db-5432-team`. Same database, same name; never holds a password."""
    parts = urlsplit(redacted(url))
    name = f"postgresql-{parts.netloc}{parts.path}"
    if parts.query:
        name += f"-{parts.query}"
    return re.sub(r"[^A-Za-z0-9@._-]+", "-", name).strip("-")[:200]
