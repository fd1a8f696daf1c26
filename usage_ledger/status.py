"""The writer's state, for `usage-ledger status`: a small JSON file beside the ledger
(`<ledger>.status.json`; for a PostgreSQL ledger in the default ledger folder, see backend.py), replaced atomically (write, then rename) by the running proxy's
writer thread within a second of any change, and every 5 s while nothing changes. No IPC: any process that can read the ledger's folder can read
it, and a file not updated for a while means no proxy is writing.

Fields: `pid`, `ledger`, `started_at` and `updated_at` (UTC), `state` ("ok", "retrying": the
ledger cannot be written now, "stopped": the proxy shut down), `queue` (records waiting in
memory), `journal_records` and `journal_bytes` (waiting in the journal), `written` (records
written since start), `dropped` (records lost since start), `failed_attempts` (writes that
failed and were tried again), `last_error`, `last_error_at`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

REFRESH_S = 5.0
STALE_AFTER_S = 15.0  # room for two missed refreshes


def status_path(db_path: str) -> str:
    return f"{db_path}.status.json"


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def write_status(path: str, status: dict[str, Any]) -> None:
    """Replace the status file at once (readers never see half of one). Raises OSError."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(status, f)
    os.replace(tmp, path)


class StatusFile:
    """The writer's status file: written within a call of any change; unchanged, only every
    REFRESH_S (it shows the proxy is alive without a disk write every second)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._written: dict[str, Any] | None = None
        self._due = 0.0

    def update(self, status: dict[str, Any]) -> None:
        """Adds `updated_at`; a file that cannot be written is tried again next time."""
        now = time.monotonic()
        if status == self._written and now < self._due:
            return
        try:
            write_status(self.path, {**status, "updated_at": now_utc()})
        except OSError:
            log.debug("usage-ledger: cannot write %s", self.path, exc_info=True)
            return
        self._written, self._due = status, now + REFRESH_S


def read_status(path: str) -> dict[str, Any] | None:
    """The last status written, or None if there is none (no proxy has written this ledger)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def describe_status(db_path: str, journal_bytes: int, now: datetime | None = None,
                    name: str | None = None) -> tuple[list[str], bool]:
    """Lines for people about the writer of `db_path` (the ledger's local files' base path:
    backend.Backend.local), and whether anything needs attention (records lost, records
    waiting, or an error now). `journal_bytes` is measured by the caller (the file may outlive
    the proxy that wrote it). name: the ledger as shown (default `db_path`)."""
    status = read_status(status_path(db_path))
    lines = [f"ledger:   {name or db_path}"]
    if status is None:
        lines.append("writer:   no status file (no proxy has written this ledger since it kept one)")
        lines.append(f"journal:  {journal_bytes} bytes waiting" if journal_bytes else "journal:  none")
        return lines, bool(journal_bytes)
    now = now or datetime.now(UTC)
    updated = status.get("updated_at")
    try:
        age = (now - datetime.fromisoformat(str(updated).replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        age = float("inf")
    state = status.get("state", "?")
    if state != "stopped" and (age > STALE_AFTER_S or not _alive(status.get("pid"))):
        state = f"not running (last seen {updated}, was {state})"
    lines.append(f"writer:   {state}, pid {status.get('pid')}, since {status.get('started_at')}, updated {updated}")
    lines.append(f"queue:    {status.get('queue', 0)} records in memory")
    journal_records = status.get("journal_records", 0) if journal_bytes else 0
    lines.append(f"journal:  {journal_records} records, {journal_bytes} bytes" if journal_bytes else "journal:  none")
    lines.append(f"written:  {status.get('written', 0)} records since start")
    lines.append(f"dropped:  {status.get('dropped', 0)} records lost since start")
    error = status.get("last_error")
    lines.append(f"last error: {error} (at {status.get('last_error_at')})" if error else "last error: none")
    attention = bool(status.get("dropped")) or bool(journal_bytes) or status.get("state") == "retrying"
    return lines, attention
