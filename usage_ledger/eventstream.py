"""AWS event-stream framing (`application/vnd.amazon.eventstream`), read incrementally.

Amazon Bedrock streams (`InvokeModelWithResponseStream`, `ConverseStream`) come as binary
messages: a 12-byte prelude (total length, headers length, both big-endian uint32, and the
CRC32 of those 8 bytes), the headers, the payload, and the CRC32 of everything before it.
Each header is a 1-byte name length, the name, a 1-byte value type and the value (types 0-9:
true, false, int8, int16, int32, int64, byte array and string with a 2-byte length, timestamp,
uuid). `:message-type` is `event` (named by `:event-type`), `exception` (named by
`:exception-type`, a JSON payload with `message`) or `error` (`:error-code`, `:error-message`).
Source: the AWS SDKs' event-stream coding (botocore/eventstream.py, aws-c-event-stream), the
Transcribe "event stream encoding" page.

Pure: bytes in, messages out. Memory is one message at most (`max_message`); a longer one is
skipped unread and counted. A CRC that does not match means the framing is lost: decoding
stops and `problem` says why.
"""

from __future__ import annotations

import json
import struct
from binascii import crc32
from collections.abc import Iterable
from dataclasses import dataclass

from . import json_bytes
from .framing import DEFAULT_MAX_FRAME, Frame, Interest, _Framer

PRELUDE = 12
_MIN_MESSAGE = PRELUDE + 4
_PRELUDE_FORMAT = struct.Struct("!III")
_UINT32 = struct.Struct("!I")
_FIXED_SIZE = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
_INT_FORMAT = {2: "!b", 3: "!h", 4: "!i", 5: "!q", 8: "!q"}

HeaderValue = bool | int | bytes | str


@dataclass(slots=True, frozen=True)
class Message:
    headers: dict[str, HeaderValue]
    payload: bytes


class EventStreamDecoder:
    """Bytes in at any split, complete, CRC-checked messages out."""

    def __init__(self, max_message: int = DEFAULT_MAX_FRAME) -> None:
        self.max_message = max_message
        self.buf = bytearray()
        self.skip = 0  # bytes still to drop of an oversized message
        self.oversized = 0
        self.decoded = 0
        self.problem: str | None = None

    def feed(self, data: bytes) -> list[Message]:
        if self.problem is not None:
            return []
        if self.skip:
            dropped = min(self.skip, len(data))
            self.skip -= dropped
            data = data[dropped:]
        buf = self.buf
        buf += data
        messages: list[Message] = []
        pos = 0
        while len(buf) - pos >= PRELUDE:
            total, headers_length, prelude_crc = _PRELUDE_FORMAT.unpack_from(buf, pos)
            if crc32(buf[pos:pos + 8]) != prelude_crc:
                self._fail(f"event-stream prelude CRC mismatch at message {self._count(messages)}")
                return messages
            if total < _MIN_MESSAGE or headers_length > total - _MIN_MESSAGE:
                self._fail(f"event-stream message lengths {total}/{headers_length} do not fit")
                return messages
            if total > self.max_message:
                self.oversized += 1
                held = len(buf) - pos
                if held >= total:
                    pos += total
                    continue
                self.skip = total - held
                pos = len(buf)
                break
            if len(buf) - pos < total:
                break
            end = pos + total
            (message_crc,) = _UINT32.unpack_from(buf, end - 4)
            if crc32(buf[pos + 8:end - 4], prelude_crc) != message_crc:
                self._fail(f"event-stream message CRC mismatch at message {self._count(messages)}")
                return messages
            headers_end = pos + PRELUDE + headers_length
            try:
                headers = parse_headers(bytes(buf[pos + PRELUDE:headers_end]))
            except ValueError as e:
                self._fail(f"event-stream headers unreadable: {e}")
                return messages
            messages.append(Message(headers, bytes(buf[headers_end:end - 4])))
            pos = end
        del buf[:pos]
        self.decoded += len(messages)
        return messages

    def _count(self, pending: list[Message]) -> int:
        return self.decoded + len(pending)

    def _fail(self, reason: str) -> None:
        self.problem = reason
        self.buf = bytearray()


def parse_headers(data: bytes) -> dict[str, HeaderValue]:
    """The headers section of one message. Raises ValueError when it does not parse."""
    headers: dict[str, HeaderValue] = {}
    i, size = 0, len(data)
    while i < size:
        name_length = data[i]
        name = data[i + 1:i + 1 + name_length].decode("utf-8")
        i += 1 + name_length
        if i >= size:
            raise ValueError("header without a value type")
        kind = data[i]
        i += 1
        value: HeaderValue
        if kind in (6, 7):
            if i + 2 > size:
                raise ValueError("truncated header length")
            (length,) = struct.unpack_from("!H", data, i)
            raw = data[i + 2:i + 2 + length]
            if len(raw) != length:
                raise ValueError("truncated header value")
            value = raw.decode("utf-8") if kind == 7 else raw
            i += 2 + length
        elif kind in _FIXED_SIZE:
            width = _FIXED_SIZE[kind]
            if i + width > size:
                raise ValueError("truncated header value")
            if kind in (0, 1):
                value = kind == 0
            elif kind == 9:
                value = data[i:i + width]
            else:
                (value,) = struct.unpack_from(_INT_FORMAT[kind], data, i)
            i += width
        else:
            raise ValueError(f"unknown header value type {kind}")
        headers[name] = value
    return headers


def message_frame(message: Message) -> Frame:
    """A message as a Frame: its payload, named by its event type. An exception or error is
    named `exception:<type>`, with a JSON payload holding its `message`."""
    headers = message.headers
    kind = headers.get(":message-type", "event")
    if kind == "event":
        name = headers.get(":event-type")
        return Frame(message.payload, name if isinstance(name, str) else None)
    if kind == "exception":
        return Frame(message.payload, f"exception:{headers.get(':exception-type', 'exception')}")
    code, text = headers.get(":error-code", "error"), headers.get(":error-message", "")
    return Frame(json.dumps({"message": str(text)}).encode(), f"exception:{code}")


class EventStreamFramer(_Framer):
    """The framer for `application/vnd.amazon.eventstream` bodies: every message is a frame
    (its prelude must be read anyway to find the next one); the tracker decides from the event
    name which payloads to parse."""

    def __init__(self, interesting: Interest, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        super().__init__(interesting, max_frame)
        self.decoder = EventStreamDecoder(max_frame)

    @property
    def problem(self) -> str | None:
        return self.decoder.problem

    def feed(self, data: bytes) -> Iterable[Frame]:
        messages = self.decoder.feed(data)
        self.oversized = self.decoder.oversized
        return [message_frame(m) for m in messages]

    def close(self) -> Iterable[Frame]:
        return ()  # a message cut off by the end of the body is lost, like any unfinished frame


def exception_reason(frame: Frame) -> str | None:
    """`<exception type>: <message>` for an exception or error frame, else None."""
    if frame.event is None or not frame.event.startswith("exception:"):
        return None
    kind = frame.event.partition(":")[2]
    try:
        payload = json_bytes.loads(frame.data)
    except ValueError:
        payload = None
    detail = payload.get("message") or payload.get("Message") if isinstance(payload, dict) else None
    return f"{kind}: {detail}"[:500] if isinstance(detail, str) and detail else kind
