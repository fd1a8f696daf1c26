"""header_map gives what mitmproxy's Headers.get gives, for any header list a client can send."""

from hypothesis import given, strategies as st
from mitmproxy.http import Headers, Request

from usage_ledger.attribution import take_tags
from usage_ledger.headers import header_map, host_header, pretty_host

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


_AUTHORITIES = st.sampled_from(["api.openai.com", "API.OpenAI.com:443", "127.0.0.1:8080", "[::1]:9000", "[::1]",
                                "bücher.example", "xn--bcher-kva.example:8443", "host:", ":443", "a:b:c", ""])


@given(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/3"]),
       st.lists(_AUTHORITIES | st.text(max_size=12), max_size=2), _AUTHORITIES | st.text(max_size=12))
def test_pretty_host_and_host_header_equal_mitmproxys(version, hosts, authority):
    fields = [(b"Host", h.encode("utf-8", "surrogateescape")) for h in hosts]
    request = Request("10.0.0.7", 443, b"POST", b"https", authority.encode("utf-8", "surrogateescape"),
                      b"/v1/chat/completions", version.encode(), Headers(fields), b"", None, 0, 0)
    mapped = header_map(request.headers)
    try:
        expected = request.pretty_host
    except ValueError:  # mitmproxy cannot parse it either: the same error from ours
        try:
            pretty_host(request, mapped)
        except ValueError:
            return
        raise AssertionError("ours parsed what mitmproxy could not")
    assert pretty_host(request, mapped) == expected
    assert host_header(request, mapped) == request.host_header
