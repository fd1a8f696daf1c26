"""header_map gives what mitmproxy's Headers.get gives, for any header list a client can send."""

from hypothesis import given, strategies as st
from mitmproxy.http import Headers

from usage_ledger.attribution import take_tags
from usage_ledger.headers import header_map

_NAMES = st.sampled_from([b"Content-Type", b"content-type", b"CONTENT-ENCODING", b"Authorization", b"x-api-key",
                          b"Host", b"User-Agent", b"X-Ledger-Tag-Team", b"x-ledger-tag-", b"X-Other", b"\xc3\x9cber"])
_FIELDS = st.lists(st.tuples(_NAMES | st.binary(min_size=1, max_size=8), st.binary(max_size=12)), max_size=12)


@given(_FIELDS)
def test_header_map_equals_headers_get(fields):
    headers = Headers(fields)
    mapped = header_map(headers)
    for name, _ in fields:
        key = name.lower().decode("utf-8", "surrogateescape")
        assert mapped[key] == headers.get(name.decode("utf-8", "surrogateescape"))
    assert len(mapped) == len({name.lower() for name, _ in fields})


@given(_FIELDS)
def test_take_tags_finds_a_tag_header_wherever_it_is(fields):
    headers = Headers(fields)
    has_tag = any(name.lower().startswith(b"x-ledger-tag-") for name, _ in fields)
    tags = take_tags(headers)
    assert not any(name.lower().startswith(b"x-ledger-tag-") for name, _ in headers.fields)
    if not has_tag:
        assert tags is None
