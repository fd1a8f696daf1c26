"""OpenTelemetry export of finished calls, as a sub-addon of the ledger.

On when `ledger_otlp_endpoint` is set, or the standard OTEL_EXPORTER_OTLP_ENDPOINT /
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is (unless OTEL_SDK_DISABLED=true). Off, the SDK is never
imported. Rows reach it from the ledger's writer thread once written, so each span carries the
row exactly as stored (cost included) and nothing of it runs on the event loop.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from mitmproxy import ctx

log = logging.getLogger(__name__)

_ENV_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

RowsWritten = Callable[[list[dict[str, Any]]], None]


def wanted(option: str, env: dict[str, str] | os._Environ[str] = os.environ) -> tuple[bool, str | None]:
    """(export on?, base URL to use): the option's URL, else None for the SDK's env settings.

    Raises ValueError for an option that is not an http(s) URL."""
    option = option.strip()
    if option:
        if not option.startswith(("http://", "https://")):
            raise ValueError(f"{option!r} is not an http:// or https:// URL (OTLP/HTTP, e.g. http://localhost:4318)")
        return True, option
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False, None
    return any(env.get(name) for name in _ENV_ENDPOINTS), None


class OtelExport:
    def __init__(self, listeners: list[RowsWritten]) -> None:
        """listeners: the ledger's "rows written" callbacks, called in its writer thread."""
        self.listeners = listeners
        self.exporter = None

    def load(self, loader) -> None:
        loader.add_option(
            "ledger_otlp_endpoint", str, "",
            "OTLP/HTTP base URL (http://host:4318) to send each call to as an OpenTelemetry GenAI span "
            "and metrics. Empty: OTEL_EXPORTER_OTLP_ENDPOINT if set, else no export.",
        )

    def configure(self, updated: set[str]) -> None:
        if "ledger_otlp_endpoint" not in updated:
            return
        try:
            on, endpoint = wanted(ctx.options.ledger_otlp_endpoint)
        except ValueError as e:
            log.error("usage-ledger: ledger_otlp_endpoint: %s", e)
            return
        self._stop(wait=False)
        if not on:
            return
        from .otel_sdk import OtlpExporter  # the SDK loads only now

        self.exporter = OtlpExporter(endpoint)
        self.listeners.append(self.exporter.export_rows)
        log.info("usage-ledger: sending calls over OTLP to %s", endpoint or "the OTEL_EXPORTER_OTLP_* endpoint")

    def _stop(self, wait: bool) -> None:
        exporter, self.exporter = self.exporter, None
        if exporter is None:
            return
        self.listeners.remove(exporter.export_rows)
        if wait:
            exporter.shutdown()
        else:  # a flush to an absent receiver can take its timeout: not on the event loop
            threading.Thread(target=exporter.shutdown, name="usage-ledger-otlp-stop", daemon=True).start()

    def done(self) -> None:
        # Runs after the ledger's own done(): every row is written, and handed over, by now.
        self._stop(wait=True)
