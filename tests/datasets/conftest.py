"""Fixtures for the dataset tests: official-format writers and a local HTTP server."""

from __future__ import annotations

import http.server
import importlib.util
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_spec = importlib.util.spec_from_file_location(
    "dlbench_tests_dataset_formats", Path(__file__).with_name("formats.py")
)
assert _spec is not None and _spec.loader is not None
_formats = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _formats
_spec.loader.exec_module(_formats)


@pytest.fixture(scope="session")
def formats() -> Any:
    """The official-format writers (tests/datasets/formats.py)."""
    return _formats


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the real per-user cache."""
    cache = tmp_path / "dlbench-cache"
    monkeypatch.setenv("DLBENCH_CACHE", str(cache))
    return cache


class _Server:
    """Serves ``routes[path] = bytes``; ``truncate[path] = n`` announces the full length but
    sends only ``n`` bytes, then closes (a cut connection)."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        self.truncate: dict[str, int] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 5

            def do_GET(self) -> None:  # noqa: N802
                server.requests.append(self.path)
                body = server.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                n = server.truncate.get(self.path, len(body))
                self.wfile.write(body[:n])
                self.wfile.flush()
                if n < len(body):
                    self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def http_server() -> Iterator[_Server]:
    """A local HTTP server on 127.0.0.1 (port 0), shut down after the test."""
    srv = _Server()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(timeout=5)
