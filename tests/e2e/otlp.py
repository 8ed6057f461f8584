"""An OTLP/HTTP collector stand-in for the end-to-end tests: every span exported to it
(by the gateway and by the Reflex process, through reflex-otel), decoded with the
opentelemetry-proto package the Python exporter encodes with."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict


class Receiver:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver._add(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def _add(self, body: bytes) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans = []
        for rs in request.resource_spans:
            service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "")
            for ss in rs.scope_spans:
                for s in ss.spans:
                    attributes = {a.key: getattr(a.value, a.value.WhichOneof("value") or "string_value") for a in s.attributes}
                    spans.append(
                        Span(service, s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.kind, attributes)
                    )
        with self._lock:
            self.spans.extend(spans)

    def wait_for(self, pred: Callable[[Span], bool], timeout: float = 20) -> Span:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = next((s for s in self.spans if pred(s)), None)
            if found is not None:
                return found
            time.sleep(0.05)
        with self._lock:
            seen = [(s.service, s.name, s.trace_id) for s in self.spans[-30:]]
        raise AssertionError(f"no such span within {timeout} s; last seen: {seen}")

    def close(self) -> None:
        self._server.shutdown()
