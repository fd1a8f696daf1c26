"""The short text fields of a multipart/form-data body (`model`, `stream`, ...), files skipped.

Pure: bytes in, a dict out. A file part is stepped over by searching for the next boundary in
place, never split or copied, so a 25 MB audio upload costs a few byte searches.
Format: RFC 7578 (multipart/form-data), RFC 2046 section 5.1 (boundaries).
"""

from __future__ import annotations

import re

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_NAME = re.compile(rb'\bname="([^"]*)"', re.IGNORECASE)
MAX_FIELD = 4096
"""Longer values are not fields the ledger needs (the prompt of an edit may be; it is skipped)."""


def form_fields(content_type: str, body: bytes) -> dict[str, str] | None:
    """{name: value} of the form's text fields up to MAX_FIELD bytes; None when the content type
    names no boundary. Parts with a `filename`, and values that are not UTF-8, are left out."""
    m = _BOUNDARY.search(content_type)
    if not m:
        return None
    delimiter = b"--" + m.group(1).strip().encode("latin-1")
    fields: dict[str, str] = {}
    start = body.find(delimiter)
    while start >= 0:
        head_start = start + len(delimiter)
        if body[head_start:head_start + 2] == b"--":
            break  # the closing delimiter
        head_end = body.find(b"\r\n\r\n", head_start)
        end = body.find(b"\r\n" + delimiter, head_start)
        if head_end < 0 or end < 0 or head_end > end:
            break
        head = body[head_start:head_end]
        name = _NAME.search(head)
        if name and b"filename=" not in head.lower() and end - head_end - 4 <= MAX_FIELD:
            try:
                fields[name.group(1).decode()] = body[head_end + 4:end].decode()
            except UnicodeDecodeError:
                pass
        start = end + 2
    return fields
