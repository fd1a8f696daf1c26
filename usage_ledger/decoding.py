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


SNIFF_LIMIT = 1 << 16
"""Bytes held back, at most, while a decoder has produced nothing yet."""

_BOM = b"\xef\xbb\xbf"
_PLAIN_STARTS = (b"{", b"[", b":", b"data:", b"event:", b"id:", b"retry:")
"""How an uncompressed SSE, NDJSON or JSON body begins. No gzip (1f 8b), zlib (78 ..) or zstd
(28 b5 2f fd) stream begins so; a brotli or raw deflate stream may, but then it decodes and
this is not asked."""


def _looks_plain(held: bytes) -> bool:
    """Do the first bytes of a body begin (or begin to begin) as a plain body would?"""
    if _BOM.startswith(held[:3]) and len(held) < 3:
        return True
    rest = held.removeprefix(_BOM).lstrip()
    if not rest:
        return True
    return any(rest[:len(start)] == start[:len(rest)] for start in _PLAIN_STARTS)


def _plain_if_not_encoded(decode: Decode) -> Decode:
    """`decode`, unless the body is not encoded at all: some servers send plain SSE under a
    `Content-Encoding: gzip` header. While the held bytes begin like a plain body (up to
    SNIFF_LIMIT of them), what the decoder makes of them is held back too. If the decoder then
    fails, or the body ends with nothing decoded, the held bytes and all that follow are passed
    on as they are. Any other failure is raised, as the bare decoder would. `deflate` without a
    zlib header is raw deflate, which has no header at all: a few bytes of text may inflate to
    something before the rest fails to (`: ping` does), so decoded output is trusted only past
    the sniff limit or the body's end, whatever pieces the body came in."""
    held: list[bytearray | None] = [bytearray()]  # None once the decoder is trusted
    decoded: list[bytes] = []  # its output while held
    plain = [False]

    def trusted() -> Iterator[bytes]:
        held[0] = None
        yield from decoded
        decoded.clear()

    def decode_or_pass(data: bytes) -> Iterator[bytes]:
        if plain[0]:
            if data:
                yield data
            return
        buffer = held[0]
        if buffer is None:
            yield from decode(data)
            return
        if not data:  # the end of the body
            if buffer and not decoded and _looks_plain(buffer):
                plain[0], held[0] = True, None
                yield bytes(buffer)
            else:
                yield from trusted()
                yield from decode(data)
            return
        buffer += data
        try:
            for out in decode(data):
                if held[0] is None:
                    yield out
                    continue
                decoded.append(out)
                if (len(buffer) > SNIFF_LIMIT or sum(map(len, decoded)) > SNIFF_LIMIT
                        or not _looks_plain(buffer)):
                    yield from trusted()
        except Exception:
            if held[0] is None or not _looks_plain(buffer):
                raise
            plain[0], held[0] = True, None
            decoded.clear()
            yield bytes(buffer)
            return
        if held[0] is not None and len(buffer) > SNIFF_LIMIT:
            yield from trusted()  # decoding for real: nothing more is held back

    return decode_or_pass


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

    The decoder takes the encoded bytes piece by piece and yields decoded bytes; a body that is
    plainly not encoded (see `_plain_if_not_encoded`) comes out as it went in. Raises
    UnsupportedEncoding for an encoding we cannot decode; the decoder raises zlib.error,
    brotli.error or zstd.ZstdError for a corrupt body.
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
        return _plain_if_not_encoded(steps[0])

    def chain(data: bytes, steps: list[Decode] = steps) -> Iterator[bytes]:
        first, rest = steps[0], steps[1:]
        for piece in first(data):
            if rest:
                yield from chain(piece, rest)
            else:
                yield piece

    return _plain_if_not_encoded(chain)
