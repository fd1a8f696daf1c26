"""mitmweb with the addon shows the comment column (model, tokens, cost) by default, and a user's
own `web_columns` (command line or config.yaml) stays as it is: real mitmweb, headless, its
options read back from its own /options.json."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .proxy import MITMDUMP, ROOT, Proxy, free_port, wait_until

MITMWEB = MITMDUMP.with_name("mitmweb")
STOCK = ["tls", "icon", "path", "method", "status", "size", "time"]  # mitmweb 12's own default
TOKEN = "web-columns-test"


def web_columns(tmp_path: Path, *sets: str, until=lambda columns: True) -> list[str]:
    """Start mitmweb with addon.py and `sets`; what its web UI says `web_columns` is, once
    `until(columns)` holds (bounded polling: the proxy serves a moment before addons run)."""
    web_port = free_port()
    command = [str(MITMWEB), "-s", str(ROOT / "addon.py"), "--listen-host", "127.0.0.1",
               "--no-web-open-browser", "--set", f"web_port={web_port}", "--set", f"web_password={TOKEN}"]

    def columns() -> list[str] | None:
        try:
            options = httpx.get(f"http://127.0.0.1:{web_port}/options.json",
                                headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10, trust_env=False)
        except httpx.TransportError:  # the web server listens a moment after the proxy
            return None
        options.raise_for_status()
        value = options.json()["web_columns"]["value"]
        return value if until(value) else None

    with Proxy(tmp_path, *sets, command=command):
        return wait_until(columns, 30, "mitmweb's web_columns")


def test_mitmweb_shows_the_comment_column_by_default(tmp_path: Path) -> None:
    assert web_columns(tmp_path, until=lambda columns: columns != STOCK) == [*STOCK, "comment"]


@pytest.mark.parametrize("columns", [["path", "status", "size"], STOCK[:-1]])
def test_columns_the_user_set_stay(tmp_path: Path, columns: list[str]) -> None:
    assert web_columns(tmp_path, *(f"web_columns={c}" for c in columns)) == columns


def test_columns_from_config_yaml_stay(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("web_columns: [path, time]\n")
    assert web_columns(tmp_path) == ["path", "time"]
