"""Every recorded exchange in the shared corpus gives the usage, model and error a user would read
off the provider's response, however the body is cut into network chunks and however it is
compressed on the wire."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usage_ledger.apis.base import body_error
from usage_ledger.decoding import zstd
from usage_ledger.scanner import scan_body

from .corpus import Case, case_params, load_cases, observed, pieces_at, scan

CASES = case_params()
STREAMED = case_params(c for c in load_cases() if c.streamed)
BUFFERED = case_params(c for c in load_cases() if not c.streamed)


def _differences(got: dict, want: dict) -> dict:
    return {k: (got[k], want[k]) for k in want if got[k] != want[k]}


@pytest.mark.parametrize("case", CASES)
def test_whole_body(case: Case) -> None:
    tracker, scanner = scan(case, [case.body])
    assert scanner.problem is None
    assert observed(tracker) == case.expected()


@pytest.mark.parametrize("case", BUFFERED)
def test_buffered_body_as_the_ledger_reads_it(case: Case) -> None:
    """A non-streamed response: 2xx bodies go through scan_body, errors through body_error."""
    if case.ok:
        tracker = case.tracker()
        scan_body(tracker, case.body)
        assert observed(tracker) == case.expected()
    else:
        assert body_error(case.body) == case.expected_error


@pytest.mark.parametrize("case", CASES)
def test_every_split_into_two_pieces(case: Case) -> None:
    want = case.expected()
    body = case.body
    wrong = {}
    for k in range(1, len(body)):
        tracker, _ = scan(case, [body[:k], body[k:]])
        diff = _differences(observed(tracker), want)
        if diff:
            wrong[k] = diff
    assert not wrong, f"{len(wrong)} split offsets give a wrong result, e.g. {next(iter(wrong.items()))}"


@pytest.mark.parametrize("case", CASES)
def test_one_byte_at_a_time(case: Case) -> None:
    body = case.body
    tracker, _ = scan(case, [body[i:i + 1] for i in range(len(body))])
    assert observed(tracker) == case.expected()


# --- compressed on the wire ----------------------------------------------------------------

def _gzip_streaming(body: bytes) -> bytes:
    """gzip as a streaming server writes it: a sync flush after every few hundred bytes."""
    c = zlib.compressobj(wbits=31)
    out = [c.compress(body[i:i + 300]) + c.flush(zlib.Z_SYNC_FLUSH) for i in range(0, len(body), 300)]
    return b"".join(out) + c.flush()


ENCODERS = {
    "gzip": gzip.compress,
    "gzip-flushed": _gzip_streaming,
    "br": brotli.compress,
    "zstd": zstd.compress,
}
_compressed: dict[tuple[str, str], bytes] = {}


def _encoded(case: Case, encoder: str) -> bytes:
    key = (case.name, encoder)
    if key not in _compressed:
        _compressed[key] = ENCODERS[encoder](case.body)
    return _compressed[key]


@pytest.mark.parametrize("encoder", list(ENCODERS))
@pytest.mark.parametrize("case", STREAMED)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compressed_stream_at_any_split(case: Case, encoder: str, data: st.DataObject) -> None:
    blob = _encoded(case, encoder)
    offsets = data.draw(st.lists(st.integers(1, max(1, len(blob) - 1)), max_size=12), label="offsets")
    tracker, scanner = scan(case, pieces_at(blob, offsets), encoder.split("-")[0])
    assert scanner.problem is None
    assert observed(tracker) == case.expected()


@pytest.mark.parametrize("encoder", list(ENCODERS))
@pytest.mark.parametrize("case", STREAMED)
def test_compressed_stream_one_byte_at_a_time(case: Case, encoder: str) -> None:
    blob = _encoded(case, encoder)
    tracker, scanner = scan(case, [blob[i:i + 1] for i in range(len(blob))], encoder.split("-")[0])
    assert scanner.problem is None
    assert observed(tracker) == case.expected()


# --- the corpus itself ----------------------------------------------------------------------

def test_corpus_covers_every_api_and_stream_format() -> None:
    cases = load_cases()
    if not cases:
        pytest.skip("no corpus")
    assert {c.api for c in cases} >= {"openai-chat", "openai-responses", "anthropic-messages", "gemini", "ollama"}
    firsts = {c.body.lstrip()[:1] for c in cases if c.streamed}
    assert {b"d", b"e", b"[", b"{"} <= firsts  # SSE data/event lines, JSON array, JSON document
    assert any("ndjson" in c.content_type for c in cases)
    assert any(not c.ok for c in cases) and any(c.ok and c.streamed for c in cases)
