"""Safe by default: the proxy started as the README says serves this machine only, and serves
other machines once the user says so (--listen-host, --set listen_host=, ledger_allow_remote)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from usage_ledger.listen import is_loopback, open_addresses
from usage_ledger.store import connect

from .proxy import MITMDUMP, Proxy

UV = os.environ.get("UV") or shutil.which("uv")
# The README's command; without uv on hand, the same mitmdump that `uv run` would start.
README_COMMAND = [UV, "run", "mitmdump", "-s", "addon.py"] if UV else [str(MITMDUMP), "-s", "addon.py"]


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine other than loopback, one that a socket can bind."""
    candidates = []
    for probe in ("10.255.255.255", "192.168.255.255", "172.16.255.255", "192.0.2.255"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.connect((probe, 9))  # UDP connect sends nothing: it only picks the source address
                candidates.append(s.getsockname()[0])
            except OSError:
                pass
    try:
        candidates += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)]
    except OSError:
        pass
    for host in candidates:
        if is_loopback(host) or host == "0.0.0.0":
            continue
        with socket.socket() as s:
            try:
                s.bind((host, 0))
                return host
            except OSError:
                continue
    return None


HOST = non_loopback_address()
needs_address = pytest.mark.skipif(HOST is None, reason="this machine has no non-loopback IPv4 address")


class Upstream:
    """A loopback HTTP server standing in for a provider; counts the requests that reach it."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        paths = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                paths.append(self.path)
                self.send_response(200)
                self.send_header("content-length", "6")
                self.end_headers()
                self.wfile.write(b"served")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.close()


def get_through(proxy_host: str, port: int, url: str) -> httpx.Response:
    # Connecting to one of this machine's own addresses makes it the connection's source too,
    # so the proxy sees the peer a machine on the network would be.
    with httpx.Client(proxy=f"http://{proxy_host}:{port}", trust_env=False, timeout=30) as client:
        return client.get(url)


def open_up(*sets: str) -> list[str]:
    # mitmproxy's own block_global refuses public peers on any listen address; a test machine
    # whose only address is public would otherwise never be served.
    if HOST is not None and ipaddress.ip_address(HOST).is_global:
        sets += ("--set", "block_global=false")
    return list(sets)


@needs_address
def test_the_readme_proxy_refuses_another_machine_and_serves_this_one(tmp_path, upstream):
    with Proxy(tmp_path, command=README_COMMAND) as proxy:
        assert get_through("127.0.0.1", proxy.port, upstream.url + "/local").text == "served"
        with pytest.raises(httpx.TransportError):
            get_through(HOST, proxy.port, upstream.url + "/remote")
    assert upstream.paths == ["/local"]
    assert "refused a connection from " + HOST in proxy.log_path.read_text()


@needs_address
@pytest.mark.parametrize("opening", [
    ["--listen-host", "0.0.0.0"],
    ["--set", "listen_host="],  # explicitly every interface, though it equals mitmproxy's default
    ["--set", "ledger_allow_remote=true"],
], ids=["listen-host", "set-listen_host-empty", "ledger_allow_remote"])
def test_an_explicit_choice_serves_other_machines_and_says_so(tmp_path, upstream, opening):
    with Proxy(tmp_path, command=README_COMMAND + open_up(*opening)) as proxy:
        response = get_through(HOST, proxy.port, upstream.url + "/remote")
    assert (response.status_code, response.text) == (200, "served")
    assert upstream.paths == ["/remote"]
    assert "usage-ledger: other machines can use this proxy" in proxy.log_path.read_text()


def test_loopback_covers_ipv4_mapped_peers_of_a_dual_stack_socket():
    assert is_loopback("127.0.0.1") and is_loopback("127.3.2.1") and is_loopback("::1")
    assert is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("::ffff:192.0.2.2") and not is_loopback("192.0.2.2") and not is_loopback("::")


def test_open_addresses_lists_only_what_other_machines_reach():
    bound = [("127.0.0.1", 8080), ("::1", 8080, 0, 0), ("0.0.0.0", 8080), ("::", 8080, 0, 0)]
    assert open_addresses(bound) == ["0.0.0.0:8080", "[::]:8080"]
    assert open_addresses(bound[:2]) == []


def test_the_ledger_folder_is_created_private_and_an_existing_one_is_left_alone(tmp_path):
    connect(tmp_path / "new" / "ledger.db").close()
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new" / "ledger.db").stat().st_mode) == 0o600
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    connect(shared / "ledger.db").close()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
