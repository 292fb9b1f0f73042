"""`/healthz` and `/metrics` over the standard library's threading HTTP server (local port)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

Health = Callable[[], tuple[bool, dict[str, Any]]]
Metrics = Callable[[], tuple[bytes, str]]


class HealthServer:
    """Serves `GET /healthz` (200 or 503, a small JSON body) and `GET /metrics` (Prometheus
    text) on `host:port` (port 0: a free one, then `port` says which)."""

    def __init__(self, host: str, port: int, health: Health, metrics: Metrics) -> None:
        handler = type("Handler", (_Handler,), {"health": staticmethod(health)})
        handler.metrics = staticmethod(metrics)  # type: ignore[attr-defined]
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="http"
        )
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    health: Health
    metrics: Metrics
    server_version = "dianabot-workers"

    def do_GET(self) -> None:  # noqa: N802  (the standard library's name)
        path = self.path.split("?", 1)[0]
        try:
            if path == "/healthz":
                ok, body = self.health()
                payload = json.dumps(body, default=str).encode()
                self._send(200 if ok else 503, payload, "application/json")
            elif path == "/metrics":
                payload, content_type = self.metrics()
                self._send(200, payload, content_type)
            else:
                self._send(404, b"not found: try /healthz or /metrics\n", "text/plain")
        except Exception:
            log.exception("%s failed", path)
            self._send(500, b"internal error\n", "text/plain")

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s " + format, self.address_string(), *args)
