"""Incremental framing of streamed response bodies: bytes in at any split, frames out.

Three stream formats carry LLM usage: Server-Sent Events, newline-delimited JSON (Ollama) and a
JSON array streamed element by element (Gemini without `alt=sse`). A body that turns out to be one
plain JSON document (an error answered to a stream request) is framed as a single frame.

Framers are lazy, because almost no frame of a stream holds usage. A region of complete frames
is split into lines and handed on only when `interesting(region)` says it may hold something the
caller wants. When the caller also names `needles` (see Interest), each new chunk costs one
in-place search for them and nothing else: frames pile up unread in a buffer that is trimmed
(at a frame boundary) to its last KEEP bytes, and those last frames are read when the stream
ends or breaks off, which is where usage and error events come. Memory is bounded by
`max_frame`: a frame larger than that, which would have to be read, is skipped and counted.

This module chooses a framer and names them all: frames.py holds Frame and the framer interface,
boundary_framing.py the SSE and NDJSON framers, json_framing.py the JSON document and array ones.
"""

from __future__ import annotations

from .boundary_framing import KEEP, NARROW_ABOVE, NDJSONFramer, SSEFramer, _BoundaryFramer
from .frames import DEFAULT_MAX_FRAME, LEADING_NOISE, Frame, Interest, _Framer
from .json_framing import JSONArrayFramer, JSONDocumentFramer

__all__ = ["DEFAULT_MAX_FRAME", "KEEP", "LEADING_NOISE", "NARROW_ABOVE", "Frame", "Interest", "JSONArrayFramer",
           "JSONDocumentFramer", "NDJSONFramer", "SSEFramer", "_BoundaryFramer", "_Framer", "framer_for"]


def framer_for(content_type: str, first_bytes: bytes, interesting: Interest,
               max_frame: int = DEFAULT_MAX_FRAME) -> _Framer:
    """Choose the framer from the response's Content-Type and its first non-blank byte."""
    first = first_bytes.lstrip(LEADING_NOISE)[:1]
    ctype = content_type.lower()
    if "ndjson" in ctype or "jsonl" in ctype:
        return NDJSONFramer(interesting, max_frame)
    if first == b"[":
        return JSONArrayFramer(interesting, max_frame)
    if first == b"{":
        return JSONDocumentFramer(interesting, max_frame)
    return SSEFramer(interesting, max_frame)
