"""Who made a call: tags from request headers and a one-way fingerprint of the credential."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from urllib.parse import parse_qsl

from mitmproxy.http import Headers

TAG_PREFIX = "x-ledger-tag-"
_TAG_NEEDLE = b"\n" + TAG_PREFIX.encode()
_KEY_HEADERS = ("x-api-key", "api-key", "x-goog-api-key")


def take_tags(headers: Headers) -> str | None:
    """Remove `X-Ledger-Tag-<Name>: <value>` headers; their tags as a JSON object, or None."""
    # Nearly no request has one, and every request is looked at (twice): one search of all the
    # raw names at once, each after a newline, spares a loop over them.
    if (b"\n" + b"\n".join([name for name, _ in headers.fields]).lower()).find(_TAG_NEEDLE) < 0:
        return None
    tags: dict[str, str] = {}
    for name in [n for n in headers.keys() if n.lower().startswith(TAG_PREFIX)]:
        tag = name[len(TAG_PREFIX):].lower()
        values = headers.get_all(name)
        del headers[name]
        if tag:
            tags[tag] = values[-1].strip()
    return json.dumps(tags, sort_keys=True, ensure_ascii=False) if tags else None


def credential(headers: Headers | Mapping[str, str], query: str) -> str | None:
    """The API credential a request carries, wherever the provider expects it (`headers`:
    mitmproxy's, or a header_map)."""
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if token and scheme.lower() == "bearer":
        return token.strip()
    for name in _KEY_HEADERS:
        if headers.get(name):
            return headers[name].strip()
    for key, value in parse_qsl(query, keep_blank_values=False):
        if key.lower() in ("key", "api_key", "api-key"):
            return value
    return auth.strip() or None


def fingerprint(secret: str | None) -> str | None:
    """A short one-way id: tells keys apart, reveals nothing about them. A header's bytes that
    are not UTF-8 reach us as surrogates (mitmproxy's surrogateescape) and count as those bytes."""
    if not secret:
        return None
    return hashlib.sha256(b"usage-ledger/api-key\0" + secret.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def scrub(text: str | None, secret: str | None) -> str | None:
    """Text with any copy of the credential removed (providers echo keys in some errors)."""
    if text is None or not secret or len(secret) < 8:
        return text
    return text.replace(secret, "REDACTED")
