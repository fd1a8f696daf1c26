"""`usage-ledger env`: shell exports that send tools through the proxy and make them trust it."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from ..store import default_db_path
from .common import CA_CERT_NAME, CliError, add_confdir_argument, add_proxy_argument, check_proxy_url

BUNDLE_NAME = "ca-bundle.pem"
# System CA bundles by distribution, after OpenSSL's compiled-in default.
SYSTEM_CA_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Arch, Gentoo
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # macOS, Alpine, BSDs
)


def add_parser(sub) -> None:
    p = sub.add_parser("env", help="print shell exports that point tools at the proxy",
                       description='Print export lines; use: eval "$(usage-ledger env)"')
    add_proxy_argument(p)
    add_confdir_argument(p)
    p.set_defaults(func=run)


def pem_blocks(text: str) -> list[str]:
    """The PEM certificates in a file's text, each with its BEGIN/END lines."""
    blocks, current = [], None
    for line in text.splitlines():
        line = line.strip()
        if line == "-----BEGIN CERTIFICATE-----":
            current = [line]
        elif current is not None:
            current.append(line)
            if line == "-----END CERTIFICATE-----":
                blocks.append("\n".join(current))
                current = None
    return blocks


def system_ca_file(exclude: Path) -> Path | None:
    """The system's CA bundle; certifi's if the system has none."""
    candidates = [ssl_default_cafile(), *SYSTEM_CA_FILES]
    try:
        import certifi  # optional

        candidates.append(certifi.where())
    except ImportError:
        pass
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and Path(candidate).resolve() != exclude.resolve():
            try:
                if pem_blocks(Path(candidate).read_text(errors="replace")):
                    return Path(candidate)
            except OSError:
                continue
    return None


def ssl_default_cafile() -> str | None:
    import ssl

    # OpenSSL's compiled-in default, not $SSL_CERT_FILE (which may already be our bundle).
    return ssl.get_default_verify_paths().openssl_cafile


def mitmproxy_ca(confdir: str) -> Path:
    """mitmproxy's CA certificate in `confdir`, created the way mitmdump creates it on its first
    start (mitmproxy's own CertStore, same basename and key size) when it is missing, so `env`
    works before the proxy ever ran and the proxy then uses this CA."""
    folder = Path(confdir).expanduser()
    ca = folder / CA_CERT_NAME
    if not ca.is_file():
        if (folder / "mitmproxy-ca.pem").exists():  # the key is there: never replace a CA in use
            raise CliError(f"{folder / 'mitmproxy-ca.pem'} exists but {ca} does not; "
                           f"restore it, or move both away to make a new CA")
        from mitmproxy.certs import CertStore
        from mitmproxy.options import CONF_BASENAME, KEY_SIZE

        try:
            CertStore.from_store(folder, CONF_BASENAME, KEY_SIZE)
        except (OSError, ValueError) as e:
            raise CliError(f"cannot create mitmproxy's CA in {folder}: {e}") from None
    return ca


def write_bundle(ca: Path, bundle: Path) -> Path:
    """System CAs plus mitmproxy's, for tools whose CA setting replaces the defaults."""
    system = system_ca_file(exclude=bundle)
    ours = pem_blocks(ca.read_text(errors="replace"))
    if not ours:
        raise CliError(f"{ca} holds no PEM certificate")
    seen, blocks = set(), []
    for block in (pem_blocks(system.read_text(errors="replace")) if system else []) + ours:
        if block not in seen:
            seen.add(block)
            blocks.append(block)
    text = (f"# usage-ledger: {system or 'no system CA bundle found'} plus {ca}\n"
            + "\n".join(blocks) + "\n")
    bundle.parent.mkdir(parents=True, exist_ok=True)
    if not bundle.is_file() or bundle.read_text(errors="replace") != text:
        tmp = bundle.with_name(bundle.name + ".tmp")
        tmp.write_text(text)
        tmp.chmod(0o644)
        tmp.replace(bundle)
    return bundle


def proxy_env(proxy: str, confdir: str) -> dict[str, str]:
    """The environment variables that send tools through the proxy and make them trust it."""
    ca = mitmproxy_ca(confdir)
    bundle = write_bundle(ca, Path(default_db_path()).expanduser().parent / BUNDLE_NAME)
    env = {name: proxy for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")}
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "CODEX_CA_CERTIFICATE"):
        env[name] = str(bundle)
    env["NODE_EXTRA_CA_CERTS"] = str(ca)
    env["NODE_USE_ENV_PROXY"] = "1"
    return env


def local_no_proxy() -> str | None:
    """The caller's NO_PROXY if it exempts local servers from the proxy."""
    for name in ("NO_PROXY", "no_proxy"):
        value = os.environ.get(name, "")
        entries = {e.strip().lower() for e in value.split(",")}
        if entries & {"localhost", "127.0.0.1", "::1", "[::1]", "*", ".localhost"}:
            return f"{name}={value}"
    return None


def run(args: argparse.Namespace) -> int:
    proxy = check_proxy_url(args.proxy)
    env = proxy_env(proxy, args.confdir)
    q = shlex.quote
    lines = [
        f"# usage-ledger: route this shell's tools through the proxy at {proxy}",
        '# use: eval "$(uv run usage-ledger env)"  (in the project; or `usage-ledger env` where it is installed)',
        *(f"export {n}={q(env[n])}" for n in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")),
        "# NO_PROXY is deliberately not set: exempting localhost would hide local servers",
        "# (Ollama at localhost:11434, vLLM, ...) from the ledger.",
    ]
    if exempt := local_no_proxy():
        lines.append(f"# warning: your {exempt} exempts local servers; calls to them will not be recorded.")
    lines += [
        "# Trust mitmproxy's CA. These settings replace the default CA list, so they name a bundle",
        "# of the system CAs plus mitmproxy's (Python ssl/httpx/requests, curl, git, Go, uv):",
        *(f"export {n}={q(env[n])}" for n in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO")),
        "# Codex CLI reads its own variable first (for HTTPS and its WebSocket):",
        f"export CODEX_CA_CERTIFICATE={q(env['CODEX_CA_CERTIFICATE'])}",
        "# Node.js adds this file to its own CAs; NODE_USE_ENV_PROXY makes Node 22.21+/24.5+ use HTTPS_PROXY.",
        f"export NODE_EXTRA_CA_CERTS={q(env['NODE_EXTRA_CA_CERTS'])}",
        "export NODE_USE_ENV_PROXY=1",
    ]
    print("\n".join(lines))
    return 0
