"""The journal's lines: every record survives a round trip, and a torn last line (a crash in
the middle of a write) costs only itself."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from usage_ledger.journal import Journal, decode, encode
from usage_ledger.records import CallFinished, CallStarted, HostRejectsStreamOptions

# Lone surrogates too: mitmproxy's view of header bytes that are not UTF-8.
texts = st.none() | st.text(max_size=40) | st.builds("".join, st.lists(st.sampled_from(["a", "\udcff", "é", "\n"])))
ints = st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.none() | st.floats(allow_nan=False, allow_infinity=False)
ids = st.text(min_size=1, max_size=20)

starts = st.builds(CallStarted, flow_id=ids, started_at=st.text(max_size=30), client=texts, user_agent=texts,
                   method=st.text(max_size=8), host=st.text(max_size=30), path=st.text(max_size=50),
                   provider=st.text(max_size=12), api=st.text(max_size=20), model_requested=texts,
                   stream=st.integers(0, 1), usage_injected=st.integers(0, 1), tags=texts, api_key_id=texts)
finishes = st.builds(CallFinished, flow_id=ids, outcome=st.text(max_size=20), status_code=ints, stream=st.integers(0, 1),
                     usage_injected=st.integers(0, 1), model=texts, ttfb_ms=floats, duration_ms=floats,
                     input_tokens=ints, cached_input_tokens=ints, cache_write_tokens=ints, output_tokens=ints,
                     reasoning_tokens=ints, total_tokens=ints, usage_json=texts, cost_usd=floats, price_source=texts,
                     service_tier=texts, error=texts)
hosts = st.builds(HostRejectsStreamOptions, host=st.text(max_size=30), learned_at=st.text(max_size=30), reason=texts)
records = st.lists(starts | finishes | hosts, max_size=12)


@given(records)
def test_every_record_comes_back_as_it_went_in(rs):
    data = b"".join(encode(r) for r in rs)
    assert decode(data) == (rs, 0)
    assert data.count(b"\n") == len(rs)  # one line each, whatever the text holds


@given(records, st.data())
def test_a_write_cut_anywhere_loses_at_most_the_record_it_cut(rs, data):
    lines = [encode(r) for r in rs]
    whole = b"".join(lines)
    cut = data.draw(st.integers(0, len(whole)))
    got, bad = decode(whole[:cut])
    # a record is whole once its closing brace is in (only its LF may be missing)
    complete = sum(1 for i in range(len(lines)) if len(b"".join(lines[:i + 1])) - 1 <= cut)
    assert got == rs[:complete]
    assert bad <= 1


@given(records, records, st.data())
def test_appending_after_a_torn_line_keeps_every_new_record(tmp_path_factory, before, after, data):
    path = tmp_path_factory.mktemp("journal") / "ledger.db.journal.jsonl"
    whole = b"".join(encode(r) for r in before)
    cut = data.draw(st.integers(0, len(whole)))
    path.write_bytes(whole[:cut])  # the crash
    journal = Journal(str(path))
    journal.append(after)  # the next run
    replayed = [r for batch in journal.batches(5) for r in batch]
    kept = decode(whole[:cut])[0]
    assert replayed == kept + after
    assert journal.unreadable_lines <= 1
    again = [r for batch in journal.batches(5) for r in batch]
    assert again == replayed  # reading changes nothing: a replay can be done twice


def test_a_line_nested_past_the_parser_is_skipped_not_raised(tmp_path):
    path = tmp_path / "j.jsonl"
    Journal(str(path)).append([HostRejectsStreamOptions("a:443", "t", None)])
    with path.open("ab") as f:
        f.write(b"[" * 100_000 + b"\n")
    journal = Journal(str(path))
    assert [r for batch in journal.batches(10) for r in batch] == [HostRejectsStreamOptions("a:443", "t", None)]
    assert journal.unreadable_lines == 1


def test_an_append_the_disk_cuts_short_leaves_the_journal_as_it_was(tmp_path):
    """A full disk mid-append (here the file-size limit, EFBIG): the part written is cut off
    again, so the caller, which keeps the records, never meets half of them again at a replay."""
    import resource
    import signal

    path = tmp_path / "j.jsonl"
    journal = Journal(str(path))
    first = [HostRejectsStreamOptions(f"h{i}:443", "t", None) for i in range(3)]
    journal.append(first)
    size = path.stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of the signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, hard))
    try:
        try:
            journal.append([HostRejectsStreamOptions(f"x{i}:443", "t", "y" * 50) for i in range(20)])
        except OSError:
            pass
        else:
            raise AssertionError("the append went past the file-size limit")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert path.stat().st_size == size
    assert decode(path.read_bytes()) == (first, 0)
