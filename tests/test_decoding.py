"""Incremental Content-Encoding decoders give back exactly the original bytes however the encoded
body is cut."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usage_ledger.decoding import PIECE, UnsupportedEncoding, decoder_for, zstd

from .corpus import pieces_at


def deflate_raw(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


def gzip_flushed(data: bytes) -> bytes:
    """As a streaming server writes gzip: a sync flush after every 50 bytes."""
    c = zlib.compressobj(wbits=31)
    return b"".join(c.compress(data[i:i + 50]) + c.flush(zlib.Z_SYNC_FLUSH)
                    for i in range(0, len(data), 50)) + c.flush()


def zstd_frames(data: bytes) -> bytes:
    """Several zstd frames back to back (a server compressing each flush on its own)."""
    return b"".join(zstd.compress(data[i:i + 64]) for i in range(0, len(data), 64)) or zstd.compress(b"")


ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "gzip (flushed)": gzip_flushed,
    "gzip (zlib-wrapped)": zlib.compress,  # servers that say gzip and send zlib
    "deflate": zlib.compress,
    "deflate (raw)": deflate_raw,
    "br": brotli.compress,
    "zstd": zstd.compress,
    "zstd (several frames)": zstd_frames,
}

BODIES = st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=500).map(lambda t: t.encode("utf-8")),
    st.just(b'data: {"usage":{"prompt_tokens":1}}\n\n' * 300),
)


def decode_pieces(encoding: str, pieces: list[bytes]) -> bytes:
    decode = decoder_for(encoding)
    assert decode is not None
    return b"".join(b"".join(decode(p)) for p in pieces) + b"".join(decode(b""))


@pytest.mark.parametrize("name", list(ENCODERS))
@settings(max_examples=60, deadline=None)
@given(body=BODIES, data=st.data())
def test_round_trip_at_any_split(name: str, body: bytes, data: st.DataObject) -> None:
    blob = ENCODERS[name](body)
    offsets = data.draw(st.lists(st.integers(0, len(blob)), max_size=20), label="offsets")
    assert decode_pieces(name.split(" ")[0], pieces_at(blob, offsets)) == body


@pytest.mark.parametrize("name", list(ENCODERS))
def test_round_trip_one_byte_at_a_time(name: str) -> None:
    body = "data: {\"t\":\"Grüße 東京 🙂\"}\r\n\r\n".encode() * 40
    blob = ENCODERS[name](body)
    assert decode_pieces(name.split(" ")[0], [blob[i:i + 1] for i in range(len(blob))]) == body


def test_stacked_encodings_are_undone_last_first() -> None:
    body = b'data: {"usage":{"prompt_tokens":1}}\n\n' * 50
    blob = brotli.compress(gzip.compress(body))  # gzip applied first, then br
    for header in ("gzip, br", "gzip,br", " GZIP , Br ", "identity, gzip, br"):
        assert decode_pieces(header, pieces_at(blob, range(0, len(blob), 7))) == body


def test_identity_means_no_decoder() -> None:
    for header in ("", "identity", " IDENTITY ", "identity, identity", ","):
        assert decoder_for(header) is None


def test_unknown_encodings_are_refused() -> None:
    for header in ("compress", "x-snappy", "gzip, lz4", "aes128gcm"):
        with pytest.raises(UnsupportedEncoding):
            decoder_for(header)


def test_corrupt_input_raises_for_the_scanner_to_report() -> None:
    for name in ("gzip", "deflate", "br", "zstd"):
        decode = decoder_for(name)
        assert decode is not None
        with pytest.raises(Exception):
            list(decode(b"\x00\xffthis is not compressed data at all, not even close" * 4))


@pytest.mark.parametrize("name", ["gzip", "deflate", "br", "zstd"])
def test_a_compression_bomb_comes_out_in_bounded_pieces(name: str) -> None:
    plain = b"\0" * (64 * PIECE)
    packed = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress,
              "zstd": zstd.compress}[name](plain)
    assert len(packed) < PIECE // 4
    pieces = list(decoder_for(name)(packed))
    assert max(len(p) for p in pieces) <= 2 * PIECE and sum(len(p) for p in pieces) == len(plain)


def test_every_member_of_a_multi_member_gzip_body_is_decoded() -> None:
    body = gzip.compress(b"data: one\n\n") + gzip.compress(b"data: two\n\n")
    assert b"".join(decoder_for("gzip")(body)) == b"data: one\n\ndata: two\n\n"


PLAIN_BODIES = st.builds(
    lambda start, rest: start + rest,
    st.sampled_from([b"data: ", b"event: message\n", b": keep-alive\n\n", b"{", b"[", b"\n\ndata:", b"id: 1\n",
                     b"\xef\xbb\xbfdata: "]),
    st.text(max_size=1000).map(lambda t: t.encode("utf-8")),  # plain bodies are text
)


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd", "gzip, br", "x-gzip"])
@settings(max_examples=60, deadline=None)
@given(body=PLAIN_BODIES, data=st.data())
def test_a_plain_body_under_a_compression_header_comes_out_as_it_went_in(encoding, body: bytes, data):
    """Servers that label plain SSE `Content-Encoding: gzip`: the bytes are read as they are.
    (Not `deflate`: raw deflate has no header, and some text inflates as it, as clients find.)"""
    offsets = data.draw(st.lists(st.integers(0, len(body)), max_size=20), label="offsets")
    assert decode_pieces(encoding, pieces_at(body, offsets)) == body


def test_a_body_corrupt_after_it_began_to_decode_still_raises() -> None:
    blob = gzip.compress(b'data: {"usage":{"prompt_tokens":1}}\n\n' * 500)
    decode = decoder_for("gzip")
    assert b"".join(decode(blob[:-8]))  # decoding began
    with pytest.raises(zlib.error):
        list(decode(b"\0" * 8))  # a wrong CRC-32 and length in the trailer


def test_plain_sse_under_deflate_is_read_as_it_is() -> None:
    body = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n' * 30 + b"data: [DONE]\n\n"
    assert decode_pieces("deflate", pieces_at(body, range(0, len(body), 7))) == body


@settings(max_examples=150, deadline=None)
@given(body=PLAIN_BODIES, data=st.data())
def test_a_plain_body_under_deflate_decodes_the_same_at_any_split(body: bytes, data) -> None:
    """Raw deflate has no header, so a plain body labelled `deflate` is read as raw deflate when
    it inflates and as it is when it does not: which of the two may not depend on where the
    network cut it (`: ping` alone inflates to a byte; with what follows, it fails)."""
    offsets = data.draw(st.lists(st.integers(0, len(body)), max_size=6), label="offsets")
    try:
        whole = decode_pieces("deflate", [body])
    except zlib.error:
        whole = zlib.error
    try:
        cut = decode_pieces("deflate", pieces_at(body, offsets))
    except zlib.error:
        cut = zlib.error
    assert cut == whole


def test_a_comment_first_plain_stream_under_deflate_is_read_as_it_is_when_cut_early() -> None:
    body = (b': ping\n\ndata: {"model":"m","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,'
            b'"total_tokens":15}}\n\ndata: [DONE]\n\n')
    for cut in range(1, len(body)):
        assert decode_pieces("deflate", [body[:cut], body[cut:]]) == body, cut
