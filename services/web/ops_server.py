"""/metrics, /healthz and /readyz for the plain processes (consumer, notifier, checkpointer).

A stdlib HTTP server on its own daemon thread: the service's main loop never waits on a scrape.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from services.web.ops import ReadinessCheck, readiness

log = logging.getLogger("custody.ops")


class _OpsHandler(BaseHTTPRequestHandler):
    server: _OpsHTTPServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._send_json(200, {"status": "ok"})
        elif path == "/readyz":
            self._send_json(*readiness(self.server.checks))
        else:
            self._send_json(
                404, {"status": "not found", "paths": ["/metrics", "/healthz", "/readyz"]}
            )

    def _send_json(self, status: int, body: Mapping[str, object]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("ops %s: " + format, self.address_string(), *args)


class _OpsHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], checks: Mapping[str, ReadinessCheck]) -> None:
        self.checks = checks
        super().__init__(address, _OpsHandler)


class OpsServer:
    """Binds at construction (so a taken port fails at start-up); serves after ``start``."""

    def __init__(self, host: str, port: int, checks: Mapping[str, ReadinessCheck]) -> None:
        self._server = _OpsHTTPServer((host, port), checks)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ops-http", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> OpsServer:
        self._thread.start()
        log.info("serving /metrics, /healthz and /readyz on %s", self.url)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
