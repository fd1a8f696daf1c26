"""Incremental decoding of Content-Encoding, so compressed streams can be scanned as they pass.

The client still receives the encoded bytes; only our copy is decoded.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import brotli

try:  # Python 3.14+
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:  # mitmproxy depends on the backport before 3.14
    from backports import zstd  # type: ignore[no-redef]

Decode = Callable[[bytes], bytes]


class UnsupportedEncoding(ValueError):
    pass


def _gzip_or_zlib() -> Decode:
    d = zlib.decompressobj(wbits=47)  # gzip or zlib header, detected
    return d.decompress


def _deflate() -> Decode:
    """`deflate` is meant to be zlib-wrapped, but some servers send it raw."""
    state: dict[str, object] = {}

    def decode(data: bytes) -> bytes:
        d = state.get("d")
        if d is None:
            if not data:
                return b""
            wbits = 15 if (data[0] & 0x0F) == 8 else -15
            d = state["d"] = zlib.decompressobj(wbits=wbits)
        return d.decompress(data)  # type: ignore[attr-defined]

    return decode


def _brotli() -> Decode:
    d = brotli.Decompressor()
    return d.process


def _zstd() -> Decode:
    d = zstd.ZstdDecompressor()

    def decode(data: bytes) -> bytes:
        nonlocal d
        out = d.decompress(data) if data else b""
        if d.eof and d.unused_data:  # several frames in one body
            rest = d.unused_data
            d = zstd.ZstdDecompressor()
            out += decode(rest)
        elif d.eof:
            d = zstd.ZstdDecompressor()
        return out

    return decode


_DECODERS: dict[str, Callable[[], Decode]] = {
    "gzip": _gzip_or_zlib,
    "x-gzip": _gzip_or_zlib,
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}


def decoder_for(content_encoding: str) -> Decode | None:
    """An incremental decoder for a Content-Encoding header value; None for identity.

    Raises UnsupportedEncoding for an encoding we cannot decode.
    """
    names = [n.strip().lower() for n in content_encoding.split(",") if n.strip()]
    names = [n for n in names if n != "identity"]
    if not names:
        return None
    steps: list[Decode] = []
    for name in reversed(names):  # the last encoding applied is undone first
        make = _DECODERS.get(name)
        if make is None:
            raise UnsupportedEncoding(name)
        steps.append(make())
    if len(steps) == 1:
        return steps[0]

    def chain(data: bytes) -> bytes:
        for step in steps:
            data = step(data)
        return data

    return chain
