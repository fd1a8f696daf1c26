"""Incremental decoding of Content-Encoding, so compressed streams can be scanned as they pass.

The client still receives the encoded bytes; only our copy is decoded. A decoder yields its
output in pieces of at most PIECE bytes, so a small chunk that inflates enormously (a
compression bomb) never sits in memory whole.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator

import brotli

try:  # Python 3.14+
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:  # mitmproxy depends on the backport before 3.14
    from backports import zstd  # type: ignore[no-redef]

PIECE = 1 << 20
"""About the most decoded bytes handed on at once (brotli may give a little more)."""

Decode = Callable[[bytes], Iterator[bytes]]

_GZIP_MAGIC = b"\x1f\x8b"


class UnsupportedEncoding(ValueError):
    pass


def _zlib(choose_wbits: Callable[[bytes], int]) -> Decode:
    """gzip/zlib/raw deflate. A gzip body may hold several members: each is decoded in turn."""
    state: list[zlib._Decompress | None] = [None]

    def decode(data: bytes) -> Iterator[bytes]:
        while data:
            d = state[0]
            if d is None:
                d = state[0] = zlib.decompressobj(wbits=choose_wbits(data))
            out = d.decompress(data, PIECE)
            if out:
                yield out
            if d.unconsumed_tail:
                data = d.unconsumed_tail
            elif d.eof and d.unused_data.startswith(_GZIP_MAGIC):
                data, state[0] = d.unused_data, None
            else:
                return

    return decode


def _gzip_or_zlib() -> Decode:
    return _zlib(lambda first: 47)  # gzip or zlib header, detected


def _deflate() -> Decode:
    """`deflate` is meant to be zlib-wrapped, but some servers send it raw."""
    return _zlib(lambda first: 15 if (first[0] & 0x0F) == 8 else -15)


def _brotli() -> Decode:
    d = brotli.Decompressor()

    def decode(data: bytes) -> Iterator[bytes]:
        # brotli's limit is a soft one (its buffer grows in steps past it): aim at half.
        out = d.process(data, output_buffer_limit=PIECE // 2)
        while out:  # until it has nothing more to give without new input
            yield out
            out = d.process(b"", output_buffer_limit=PIECE // 2)

    return decode


def _zstd() -> Decode:
    state = [zstd.ZstdDecompressor()]

    def decode(data: bytes) -> Iterator[bytes]:
        while True:
            d = state[0]
            out = d.decompress(data, PIECE)
            if out:
                yield out
            if d.eof:  # several frames in one body
                state[0] = zstd.ZstdDecompressor()
                data = d.unused_data
                if not data:
                    return
            elif d.needs_input:
                return
            else:
                data = b""

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

    def chain(data: bytes, steps: list[Decode] = steps) -> Iterator[bytes]:
        first, rest = steps[0], steps[1:]
        for piece in first(data):
            if rest:
                yield from chain(piece, rest)
            else:
                yield piece

    return chain
