"""Ledger rows out over OTLP/HTTP with the OpenTelemetry SDK. Imported only when export is on.

The SDK's batch span processor and periodic metric reader export from their own threads; what
runs in the ledger's writer thread is building a span and recording two histograms per row.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from .semconv import DURATION_BUCKETS, TOKEN_BUCKETS, call_span, duration_point, token_points

log = logging.getLogger(__name__)

SCOPE = "usage_ledger"


def _resource() -> Resource:
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, when set, name the service instead.
    attrs = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "usage-ledger"}
    return Resource.create(attrs)


class OtlpExporter:
    def __init__(self, endpoint: str | None) -> None:
        """endpoint: OTLP/HTTP base URL (`http://host:4318`), signals go to /v1/traces and
        /v1/metrics under it; None: the SDK's own OTEL_EXPORTER_OTLP_* settings decide."""
        def url(signal: str) -> str | None:
            return f"{endpoint.rstrip('/')}/v1/{signal}" if endpoint else None

        resource = _resource()
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url("traces"))))
        self.tracer = self.tracer_provider.get_tracer(SCOPE)
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=url("metrics")))
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        meter = self.meter_provider.get_meter(SCOPE)
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS))
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS))

    def export_rows(self, rows: list[dict[str, Any]]) -> None:
        """Finished ledger rows (dicts of `requests` columns): one span and its metric points each."""
        for row in rows:
            try:
                self._export(row)
            except Exception:  # one odd row must not cost the others their spans
                log.exception("usage-ledger: could not export flow %s to OTLP", row.get("flow_id"))

    def _export(self, row: dict[str, Any]) -> None:
        described = call_span(row)
        span = self.tracer.start_span(described.name, kind=SpanKind.CLIENT, start_time=described.start_ns,
                                      attributes=described.attributes)
        if described.error is not None:
            span.set_status(Status(StatusCode.ERROR, described.error))
        span.end(end_time=described.end_ns)
        for value, attrs in token_points(row):
            self.token_usage.record(value, attrs)
        point = duration_point(row)
        if point is not None:
            self.duration.record(*point)

    def shutdown(self) -> None:
        """Export what is still buffered, then stop the SDK's threads (bounded by the exporters'
        timeouts, OTEL_EXPORTER_OTLP_TIMEOUT, when the receiver is away)."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
