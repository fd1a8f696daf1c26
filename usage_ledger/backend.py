"""Where the writer's ledger lives: a SQLite file or a PostgreSQL database, behind one seam.

`Backend(target)` takes a `ledger_db` value (a path, or a `postgresql://` URL) and gives the
writer thread (store.py) everything that differs between the two: opening a migrated
connection, the SQL dialect, which driver errors mean "keep the records and try again" and
which mean "these records can never be written as they are" (PERMANENT), whether a connection
survives an error, the database's name for people (a URL without its password), and where the
writer's local files go (the journal and status file: beside a SQLite file; for a PostgreSQL
database in the default ledger folder, named by `postgres.local_name(url)`).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import NamedTuple

from . import postgres
from .dialect import POSTGRES, SQLITE, Dialect, is_postgres
from .migrations import migrate

log = logging.getLogger(__name__)

LOCK_TIMEOUT_FLOOR_MS = 100  # a PostgreSQL lock wait shorter than this would fail on any busy table
STATEMENT_TIMEOUT_MS = 60_000  # a write that hangs this long (a stuck server) is given up and tried again
# A server that stops answering (the network gone) must not hold the writer thread for the
# minutes TCP would wait: libpq gives up on unacknowledged data after tcp_user_timeout (ms) and
# on an idle connection after the keepalives fail. Settings the URL names win.
_PG_LIVENESS = {"tcp_user_timeout": 30_000, "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                "keepalives_count": 3}


def data_folder() -> str:
    """The default ledger's folder: that of `$USAGE_LEDGER_DB` when it names a file, else
    `$XDG_DATA_HOME/usage-ledger`, else ~/.local/share/usage-ledger."""
    explicit = os.environ.get("USAGE_LEDGER_DB")
    if explicit and not is_postgres(explicit):
        return os.path.dirname(os.path.abspath(os.path.expanduser(explicit)))
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data_home, "usage-ledger")


def default_db_path() -> str:
    """`$USAGE_LEDGER_DB` (a path or a postgresql:// URL), else `ledger.db` in data_folder()."""
    return os.environ.get("USAGE_LEDGER_DB") or os.path.join(data_folder(), "ledger.db")


def local_files(target: str | os.PathLike[str]) -> tuple[str, str]:
    """(the base path of the writer's journal and status file, the ledger's name for people)
    for a `ledger_db` value: a SQLite path is both; a postgresql:// URL's files are in
    data_folder(), named by postgres.local_name, and its name is the URL without its password."""
    target = str(target)
    if is_postgres(target):
        return os.path.join(data_folder(), postgres.local_name(target)), postgres.redacted(target)
    path = str(Path(target).expanduser())
    return path, path


def connect(path: str | os.PathLike[str], busy_timeout: float = 10.0) -> sqlite3.Connection:
    """Open (creating it private, with its folder) and migrate a SQLite ledger. Raises OSError
    or sqlite3.Error when it cannot be opened for writing."""
    path = Path(path).expanduser()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    con = sqlite3.connect(path, timeout=busy_timeout, check_same_thread=False)
    try:
        con.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        migrate(con)
    except sqlite3.Error:
        con.close()
        raise
    return con


class Driver(NamedTuple):
    """A driver's error classes, as the writer sorts them."""

    dialect: Dialect
    errors: tuple[type[BaseException], ...]
    """A failed attempt: keep the records and try again (locked, disk full, server away, ...)."""
    permanent: tuple[type[BaseException], ...]
    """Writing the same records again cannot cure it (our bug, text the database refuses)."""
    duplicate: type[BaseException]
    """A row is there already: a plain INSERT goes again as upserts."""


SQLITE_DRIVER = Driver(
    SQLITE, (OSError, sqlite3.Error),
    (sqlite3.InterfaceError, sqlite3.ProgrammingError, sqlite3.IntegrityError, sqlite3.DataError,
     ValueError, TypeError),
    sqlite3.IntegrityError)


def postgres_driver() -> Driver:
    """psycopg's classes (imported only for a PostgreSQL ledger). ProgrammingError is not
    permanent here: on a server it also means a missing privilege or table, which a DBA can
    fix while the writer keeps the records."""
    import psycopg

    return Driver(POSTGRES, (OSError, psycopg.Error),
                  (psycopg.DataError, psycopg.IntegrityError, ValueError, TypeError),
                  psycopg.IntegrityError)


class Backend:
    def __init__(self, target: str | os.PathLike[str]) -> None:
        """Raises OSError for a path that is a folder or cannot be created, ValueError for a
        postgresql:// URL libpq cannot parse (its message without the password)."""
        target = str(target)
        self.opened: tuple[int, int] | None = None  # the SQLite file open() connected to
        if is_postgres(target):
            import psycopg

            self.driver = postgres_driver()
            self.target = target
            self.local, self.name = local_files(target)
            try:
                psycopg.conninfo.conninfo_to_dict(target)
            except psycopg.Error as e:
                raise ValueError(postgres.safe_message(str(e), target)) from None
            folder = os.path.dirname(self.local)
            try:
                os.makedirs(folder, mode=0o700, exist_ok=True)
            except OSError as e:  # the database is still written; only the journal cannot be
                log.warning("usage-ledger: cannot create %s for the journal and status file: %s", folder, e)
            return
        self.driver = SQLITE_DRIVER
        self.local, self.name = local_files(target)
        self.target = self.local
        if os.path.isdir(self.target):
            raise IsADirectoryError(f"{self.target} is a folder")
        if not os.path.exists(self.target):
            Path(self.target).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(self.target, os.O_CREAT | os.O_RDWR, 0o600))  # fail fast on a bad path

    @property
    def dialect(self) -> Dialect:
        return self.driver.dialect

    def open(self, busy_timeout: float):
        """A migrated connection for the writer thread. busy_timeout (s): how long one write
        waits for a lock (SQLite's busy timeout, PostgreSQL's lock_timeout). Raises one of
        `driver.errors`."""
        if self.dialect is SQLITE:
            con = connect(self.target, busy_timeout)
            self.opened = _file_id(self.target)
            return con
        import psycopg

        named = psycopg.conninfo.conninfo_to_dict(self.target)
        liveness = {k: v for k, v in _PG_LIVENESS.items() if k not in named}
        con = postgres.connect(self.target, autocommit=True, **liveness)  # transactions are explicit
        try:
            migrate(con, POSTGRES)
            lock_ms = max(LOCK_TIMEOUT_FLOOR_MS, int(busy_timeout * 1000))
            con.execute(f"SET lock_timeout = {lock_ms}")
            con.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        except BaseException:
            con.close()
            raise
        return con

    def replaced(self) -> bool:
        """Is the SQLite file at the path no longer the one `open` connected to (deleted, or
        another file moved there)? A connection to a deleted file writes on into nothing."""
        return self.dialect is SQLITE and _file_id(self.target) != self.opened

    def still_usable(self, con, error: BaseException) -> bool:
        """After a failed attempt, is the connection worth trying again (else it is closed and
        opened afresh)? SQLite's is after a lock; psycopg's unless the server went away."""
        if self.dialect is SQLITE:
            return isinstance(error, sqlite3.OperationalError)
        return not (con.closed or con.broken)

    def message(self, error: BaseException, what: str | None = None) -> str:
        """`<what, else the database's name>: <ErrorType>: <message>` (what="": without the
        prefix), with no password in it."""
        where = self.name if what is None else what
        text = f"{where}: " if where else ""
        return postgres.safe_message(f"{text}{type(error).__name__}: {error}", self.target)


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
