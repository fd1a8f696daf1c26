"""A stand-in LLM provider on loopback for end-to-end tests, serving the recorded responses in
flows/corpus.mitm. A request names its case with `x-standin-case: <corpus case>` and may ask
for a behaviour with `x-standin-fault`:

  honor-include-usage    like OpenAI: the choices:[] usage chunk only when the request asked
  reject-stream-options  like Mistral: 422 extra_forbidden for any body with stream_options
  validate-messages      like FastAPI: a body without `messages` gets a 422 that echoes it whole
  reset-mid-stream       close the connection halfway through the body
  slow                   50 ms between pieces
  gzip, deflate, br, zstd  encode the body so (though the proxy asked for identity)
  no-done                end the stream right after its last event's data line: no blank line,
                         no `[DONE]`
  content-length         send a stream with Content-Length instead of chunked
  trailers               end a chunked body with a trailer field (mitmproxy cannot pass it on)
  hold-end               send the whole body but its end (the last chunk) only once the client
                         has gone, as a provider may finish late: a client that stops reading at
                         the terminal event always disconnects before the body ends
  stall-midway           send half the body, then nothing more until the client has gone
  one-write              send the whole chunked response (headers, every piece, its end) in one
                         write, so the proxy reads it all at once
  gate                   answer only once the test calls `open_gate()` (after `close_gate()`)

Several faults may be named, comma-separated.

It also serves this project's own cases (tests/cases/*.json) by name, with their recorded
response headers. A request that names no case gets what `synth` (tests/synth.py) answers:
a synthesized reply in its API's format, with usage unique to the call (for real agents).

Streams go out chunked, in small pieces. Every request is kept in `requests` for assertions.

A request with `Upgrade: websocket` is served OpenAI Responses over WebSocket (standin_ws.py),
or a Realtime session when its path ends in `/realtime` (standin_realtime.py), or refused with
426 while `refuse_websocket` is set. A request body with a Content-Encoding
(Codex sends zstd) is decoded before it is answered.
`StandIn(tls=True)` serves TLS with a self-signed certificate (a proxy in front of it then needs
`ssl_insecure`), for clients that address `https://` / `wss://` hosts through a redirecting proxy.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
import tempfile
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import brotli
from cryptography.hazmat.primitives import serialization
from mitmproxy import certs, io

try:  # Python 3.14+
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd  # type: ignore[no-redef]

from .cases import load_own_cases
from .standin_realtime import RealtimeSession, is_realtime
from .standin_ws import serve_websocket
from .synth import Synth

FLOWS = Path(__file__).resolve().parents[1] / "flows" / "corpus.mitm"
_NOT_PASSED_ON = ("content-type", "content-length", "transfer-encoding", "content-encoding")


@dataclass
class Canned:
    status: int
    content_type: str
    body: bytes
    headers: str = ""
    """Further response headers, as wire text."""


ENCODINGS = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress, "zstd": zstd.compress}
DECODERS = {"gzip": gzip.decompress, "deflate": zlib.decompress, "br": brotli.decompress, "zstd": zstd.decompress}


def load_cases() -> dict[str, Canned]:
    cases = {}
    with FLOWS.open("rb") as f:
        for flow in io.FlowReader(f).stream():
            if "case" in flow.metadata and flow.response is not None:
                r = flow.response
                cases[flow.metadata["case"]] = Canned(
                    r.status_code, r.headers.get("content-type", "application/json"), r.get_content(strict=False) or b""
                )
    for case in load_own_cases():
        extra = "".join(f"{k}: {v}\r\n" for k, v in case.response["headers"].items()
                        if k.lower() not in _NOT_PASSED_ON)
        cases[case.name] = Canned(case.response["status"], case.content_type, case.response_body, extra)
    return cases


def without_usage_chunk(body: bytes) -> bytes:
    events = body.split(b"\n\n")
    kept = []
    for event in events:
        if event.startswith(b"data: {"):
            chunk = json.loads(event[6:])
            if chunk.get("choices") == [] and chunk.get("usage"):
                continue
        kept.append(event)
    return b"\n\n".join(kept)


def self_signed_tls() -> ssl.SSLContext:
    key, cert = certs.create_ca("usage-ledger stand-in", "127.0.0.1", 2048)
    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as pem:
        pem.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
        pem.write(cert.public_bytes(serialization.Encoding.PEM))
        pem.flush()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pem.name)
    return context


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" not in headers.get("transfer-encoding", "").lower():
        return await reader.readexactly(int(headers.get("content-length", 0)))
    body = b""
    while size := int((await reader.readline()).split(b";")[0].strip() or b"0", 16):
        body += await reader.readexactly(size)
        await reader.readline()
    while (await reader.readline()).strip():  # trailer fields, then the blank line
        pass
    return body


class StandIn:
    def __init__(self, tls: bool | ssl.SSLContext = False, agents: bool = False) -> None:
        """tls: True for a fresh self-signed certificate, or the server context to use.
        agents: answer WebSocket Responses as `synth` does too, with usage unique across the
        stand-in (for real agents), instead of standin_ws's own answers."""
        self.cases = load_cases()
        self.tls = self_signed_tls() if tls is True else (tls or None)
        self.agents = agents
        self.synth = Synth()
        self.requests: list[dict] = []
        self.ws_messages: list[dict] = []
        """Every WebSocket message a client sent, parsed."""
        self.refuse_websocket = False
        """Answer every WebSocket upgrade 426 Upgrade Required (a client then falls back to HTTP)."""
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.gate: asyncio.Event | None = None

    def close_gate(self) -> None:
        """Requests with `x-standin-fault: gate` wait, from now on, until `open_gate()`."""
        self.gate = asyncio.Event()

    def open_gate(self) -> None:
        gate = self.gate
        if gate is not None:
            self.loop.call_soon_threadsafe(gate.set)

    def __enter__(self) -> StandIn:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=self.tls))
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        server.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await read_body(reader, headers)
                self.requests.append({"method": method, "path": target, "headers": headers, "body": body})
                if headers.get("upgrade", "").lower() == "websocket" and self.refuse_websocket:
                    self.send(writer, 426, "application/json", b'{"error":{"message":"no WebSocket here"}}')
                    continue
                if headers.get("upgrade", "").lower() == "websocket" and is_realtime(target):
                    await serve_websocket(reader, writer, head, self.ws_messages, session=RealtimeSession(target))
                    break
                if headers.get("upgrade", "").lower() == "websocket":
                    answer = self.synth.websocket(headers.get("host", "")) if self.agents else None
                    await serve_websocket(reader, writer, head, self.ws_messages, answer)
                    break
                if not await self.respond(writer, headers, body, reader, method, target):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def respond(self, writer: asyncio.StreamWriter, headers: dict, body: bytes,
                      reader: asyncio.StreamReader | None = None, method: str = "POST",
                      target: str = "/") -> bool:
        faults = {f.strip() for f in headers.get("x-standin-fault", "").split(",")}
        if (encoding := headers.get("content-encoding", "").lower()) in DECODERS:
            body = DECODERS[encoding](body)  # Codex compresses its request bodies with zstd
        if "x-standin-case" not in headers:
            case = self.synth.answer(method, target, headers, body)
        elif (case := self.cases.get(headers["x-standin-case"])) is None:
            return self.send(writer, 404, "application/json", b'{"error":{"message":"unknown case"}}')
        try:
            sent = json.loads(body or b"{}")
        except ValueError:  # a multipart form
            sent = {}
        if "reject-stream-options" in faults and "stream_options" in sent:
            detail = {"detail": [{"type": "extra_forbidden", "loc": ["body", "stream_options"],
                                  "msg": "Extra inputs are not permitted"}]}
            return self.send(writer, 422, "application/json", json.dumps({"object": "error", "message": detail}).encode())
        if "validate-messages" in faults and "messages" not in sent:
            detail = {"detail": [{"type": "missing", "loc": ["body", "messages"], "msg": "Field required",
                                  "input": sent}]}
            return self.send(writer, 422, "application/json", json.dumps(detail).encode())
        if "gate" in faults and self.gate is not None:
            await self.gate.wait()
        data = case.body
        if "honor-include-usage" in faults and not (sent.get("stream_options") or {}).get("include_usage"):
            data = without_usage_chunk(data)
        extra = case.headers
        if "no-done" in faults:
            data = data[:data.rindex(b"data: [DONE]")].rstrip(b"\r\n")
        for name, encode in ENCODINGS.items():
            if name in faults:
                data, extra = encode(data), extra + f"content-encoding: {name}\r\n"
            if f"false-{name}" in faults:  # says it compressed the body, sends it plain
                extra += f"content-encoding: {name}\r\n"
        if (not any(kind in case.content_type for kind in ("event-stream", "ndjson", "eventstream"))
                or "content-length" in faults):
            return self.send(writer, case.status, case.content_type, data, extra)
        whole = bytearray()
        write = whole.extend if "one-write" in faults else writer.write
        write((f"HTTP/1.1 {case.status} X\r\ncontent-type: {case.content_type}\r\n{extra}"
               "transfer-encoding: chunked\r\n\r\n").encode())
        pieces = [data[i:i + 97] for i in range(0, len(data), 97)]
        for i, piece in enumerate(pieces):
            if "reset-mid-stream" in faults and i >= len(pieces) // 2:
                writer.transport.abort()
                return False
            if "stall-midway" in faults and i >= len(pieces) // 2:
                return await self.until_client_gone(reader)
            write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.05 if "slow" in faults else 0)
        if "hold-end" in faults:
            return await self.until_client_gone(reader)
        write(b"0\r\nx-usage-total: 31\r\n\r\n" if "trailers" in faults else b"0\r\n\r\n")
        writer.write(bytes(whole))
        await writer.drain()
        return True

    @staticmethod
    async def until_client_gone(reader: asyncio.StreamReader | None) -> bool:
        """Wait (30 s at most) until the proxy closes its side, as it does once the client has gone."""
        if reader is not None:
            try:
                await asyncio.wait_for(reader.read(), 30)
            except (TimeoutError, ConnectionError):
                pass
        return False

    @staticmethod
    def send(writer, status: int, ctype: str, data: bytes, extra: str = "") -> bool:
        writer.write((f"HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\n{extra}"
                      f"content-length: {len(data)}\r\n\r\n").encode() + data)
        return True
