"""Safe by default: with the addon loaded, the proxy serves this machine only unless the user
chose where it listens (`--listen-host`, `--set listen_host=...`, config.yaml, an address in
`--mode regular@HOST:PORT`) or set `ledger_allow_remote`. The proxy sees API keys and bills
calls to this ledger, so mitmproxy's own default (every interface) is the wrong way round here.

Why a refusal and not a loopback default: mitmproxy 12 loads `-s` scripts in a task that runs
only once `Master.run()` has started binding the servers (addons/script.py `Script.watcher`,
master.py `run`), and a server reads `listen_host` as it starts (proxy/mode_servers.py `_start`).
A script's `load` therefore comes too late to change where the proxy listens; it can still
refuse, in `client_connected`, connections that come from other machines.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

from mitmproxy import connection, ctx, optmanager

log = logging.getLogger(__name__)

# The modes in which clients connect to a listening socket themselves. Transparent, WireGuard,
# local-redirect and TUN modes only see traffic the user routed to them on purpose.
SOCKET_MODES = frozenset({"regular", "upstream", "reverse", "socks5"})


def user_chose(options: optmanager.OptManager, name: str) -> bool:
    """Whether the option was given a value at all, even one equal to its default.

    mitmproxy's public `has_changed` cannot tell an explicit `--listen-host ''` (every interface,
    asked for) from the unset default; its option record can: `value` stays `unset` until set.
    """
    return options._options[name].value is not optmanager.unset


def is_loopback(host: str) -> bool:
    """Whether an address is this machine's loopback, IPv4-mapped IPv6 ones (::ffff:127.0.0.1,
    as a dual-stack socket reports IPv4 peers) included. Raises ValueError for a non-IP."""
    address = ipaddress.ip_address(host)
    if isinstance(address, ipaddress.IPv6Address):
        address = address.ipv4_mapped or address
    return address.is_loopback


def open_addresses(addrs: Iterable[tuple]) -> list[str]:
    """The bound socket addresses ((host, port, ...) as from getsockname) that other machines can
    reach, as "host:port" strings; loopback ones are left out."""
    return [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            for host, port, *_ in addrs if not is_loopback(host)]


class LocalOnly:
    """Refuse connections from other machines unless told otherwise; say which it is at startup."""

    def __init__(self) -> None:
        self.remote_ok = False

    def load(self, loader) -> None:
        loader.add_option(
            "ledger_allow_remote", bool, False,
            "Serve other machines too. Unless this is set or listen_host is given, connections "
            "from addresses other than loopback are refused.",
        )

    def configure(self, updated: set[str]) -> None:
        if "ledger_allow_remote" in updated or "listen_host" in updated:
            self.remote_ok = ctx.options.ledger_allow_remote or user_chose(ctx.options, "listen_host")

    def running(self) -> None:
        proxyserver = ctx.master.addons.get("proxyserver")
        wide = open_addresses(proxyserver.listen_addrs()) if proxyserver else []
        if not wide:
            return
        if self.remote_ok or any(self.chosen(s.mode) for s in proxyserver.servers):
            log.warning("usage-ledger: other machines can use this proxy (listening on %s); "
                        "their calls land in this ledger", ", ".join(wide))
        else:
            log.info("usage-ledger: serving this machine only; connections from other machines "
                     "are refused (--listen-host 0.0.0.0 or --set ledger_allow_remote=true opens it)")

    @staticmethod
    def chosen(mode) -> bool:
        """Whether the proxy mode serves everyone it can reach: not a socket-proxy mode, or one
        whose address the user gave (`regular@0.0.0.0:8080`)."""
        return mode.type_name not in SOCKET_MODES or mode.custom_listen_host is not None

    def client_connected(self, client: connection.Client) -> None:
        if self.remote_ok or self.chosen(client.proxy_mode):
            return
        host = client.peername[0]
        try:
            local = is_loopback(host)
        except ValueError:  # not an IP (a Unix socket's peer): cannot be another machine
            return
        if not local:
            log.info("usage-ledger: refused a connection from %s: this proxy serves this machine only "
                     "(--listen-host 0.0.0.0 or --set ledger_allow_remote=true opens it)", host)
            client.error = "Connection refused by usage-ledger: this proxy serves this machine only."
