"""The journal: records the writer could not put into the ledger yet, in an append-only file
beside it (`<ledger>.journal.jsonl`), one JSON object per line.

The writer spills its in-memory queue here when the ledger stays unwritable (locked, full disk,
read-only) and the queue is full, and replays the file into the ledger when it is writable again
or at the next start, then removes it. Replaying is idempotent (rows are keyed by `flow_id`, and
writing a start or a finish again changes nothing), so a replay cut short is simply done again.

A crash can leave the last line torn: decoding skips any line that is not a whole record, and
the next append starts on a fresh line, so a torn line never takes another record with it.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Iterator

from .records import CallFinished, CallStarted, HostRejectsStreamOptions

Record = CallStarted | CallFinished | HostRejectsStreamOptions

_KINDS: dict[str, type] = {"start": CallStarted, "finish": CallFinished, "host": HostRejectsStreamOptions}
_KIND_OF = {cls: kind for kind, cls in _KINDS.items()}
_FIELDS = {cls: list(cls._fields) for cls in _KINDS.values()}


def journal_path(db_path: str) -> str:
    return f"{db_path}.journal.jsonl"


def encode(record: Record) -> bytes:
    """One line: `{"kind": "start"|"finish"|"host", <the record's fields>}` and a LF."""
    cls = type(record)
    obj = {"kind": _KIND_OF[cls], **{name: getattr(record, name) for name in _FIELDS[cls]}}
    # ASCII: lone surrogates (header bytes that were not UTF-8) survive as \u escapes.
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def decode_line(line: bytes) -> Record | None:
    """The record on one line, or None for a line that is not one (torn, or not ours).
    Fields a newer version added are ignored; fields an older one lacked take their defaults."""
    try:
        obj = json.loads(line)
        cls = _KINDS[obj.pop("kind")]
        return cls(**{name: obj[name] for name in _FIELDS[cls] if name in obj})
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):  # RecursionError: `[[[...`
        return None


def decode(data: bytes) -> tuple[list[Record], int]:
    """The records in a journal's bytes, and how many lines were not records (a torn last line
    counts only if it is not empty)."""
    records, bad = [], 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        record = decode_line(line)
        if record is None:
            bad += 1
        else:
            records.append(record)
    return records, bad


class Journal:
    """The journal file of one ledger; used by the writer thread only."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.unreadable_lines = 0  # lines the last replay skipped: records lost to a crash

    def size(self) -> int:
        """Bytes in the journal (0 when there is none, or something else has its name)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return 0
        return st.st_size if stat.S_ISREG(st.st_mode) else 0

    def append(self, records: Iterable[Record]) -> int:
        """Add records at the end, on disk before returning (fsync); returns the bytes written.
        Raises OSError when the file cannot be written: what part of them was written (a full
        disk) is cut off again, so the journal holds all of them or none; the caller keeps them."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # before encoding: fail fast
        try:
            data = b"".join(encode(r) for r in records)
            size = os.fstat(fd).st_size
            if size and _last_byte(self.path, size) != b"\n":
                data = b"\n" + data  # a crash tore the last line: keep it from swallowing ours
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                # Left in, half a batch would be replayed later over the values the caller still
                # writes from memory, or counted as lost though it is not.
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    pass
                raise
        finally:
            os.close(fd)
        return len(data)

    def batches(self, n: int) -> Iterator[list[Record]]:
        """The journal's records in order, n at a time; nothing when there is no journal."""
        self.unreadable_lines = 0
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return
        with f:
            batch: list[Record] = []
            for line in f:
                if not line.strip():
                    continue
                record = decode_line(line)
                if record is None:
                    self.unreadable_lines += 1
                    continue
                batch.append(record)
                if len(batch) >= n:
                    yield batch
                    batch = []
            if batch:
                yield batch

    def remove(self) -> None:
        """Drop the journal once every record in it is in the ledger."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def _last_byte(path: str, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1)
