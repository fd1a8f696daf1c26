"""A real OTLP/HTTP receiver on loopback: decodes what exporters POST to /v1/traces and
/v1/metrics with opentelemetry-proto and keeps the spans and metric data points."""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attributes(kvs) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in kvs}


class OtlpReceiver:
    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/traces":
                    request, reply = ExportTraceServiceRequest.FromString(body), ExportTraceServiceResponse()
                    kept = receiver.traces
                elif self.path == "/v1/metrics":
                    request, reply = ExportMetricsServiceRequest.FromString(body), ExportMetricsServiceResponse()
                    kept = receiver.metrics
                else:
                    self.send_error(404)
                    return
                with receiver.lock:
                    kept.append(request)
                data = reply.SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def spans(self) -> list[dict[str, Any]]:
        """Every span received: name, kind, times (ns), status, attributes, resource attributes."""
        out = []
        with self.lock:
            requests = list(self.traces)
        for request in requests:
            for rs in request.resource_spans:
                resource = attributes(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        out.append({
                            "name": span.name, "kind": span.kind, "scope": ss.scope.name,
                            "start_ns": span.start_time_unix_nano, "end_ns": span.end_time_unix_nano,
                            "status_code": span.status.code, "status_message": span.status.message,
                            "attributes": attributes(span.attributes), "resource": resource,
                        })
        return out

    def wait_spans(self, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            spans = self.spans()
            if len(spans) >= n:
                return spans
            time.sleep(0.05)
        raise AssertionError(f"expected {n} spans, got {self.spans()}")

    def histograms(self, name: str) -> list[dict[str, Any]]:
        """The data points of one histogram metric, from the last export that carried it
        (points are cumulative): count, sum, unit, attributes, bucket bounds."""
        with self.lock:
            requests = list(self.metrics)
        found: list[dict[str, Any]] = []
        for request in requests:
            points = []
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if metric.name == name:
                            points += [{"count": p.count, "sum": p.sum, "unit": metric.unit,
                                        "bounds": list(p.explicit_bounds), "attributes": attributes(p.attributes)}
                                       for p in metric.histogram.data_points]
            if points:
                found = points
        return found
