"""Fixtures for the SDK unit tests: a scriptable HTTP stub server in-process.

The SDK is imported from sdk/python in this checkout (no install needed).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

_SDK = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "sdk", "python"))
if _SDK not in sys.path:
    sys.path.insert(0, _SDK)


class Recorded:
    """One request as the stub server saw it."""

    def __init__(self, method: str, target: str, headers: Dict[str, str], body: bytes) -> None:
        self.method = method
        self.target = target  # raw request target, query string included
        self.path, _, self.query = target.partition("?")
        self.headers = headers  # lower-cased names
        self.body = body


Reply = Tuple[int, Dict[str, str], bytes]


class Stub:
    """Answers (method, path) with scripted replies and records every request."""

    def __init__(self) -> None:
        self.requests: List[Recorded] = []
        self.replies: Dict[Tuple[str, str], Reply] = {}
        self.delay_s: float = 0.0
        self.hang_up: bool = False  # close the socket without answering
        self.url = ""
        self._lock = threading.Lock()

    def reply(
        self,
        method: str,
        path: str,
        status: int = 200,
        body: Any = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> None:
        """Script an answer; dict/list bodies are sent as JSON."""
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            raw = json.dumps(body).encode("utf-8")
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            raw = body.encode("utf-8")
        else:
            raw = body or b""
        self.replies[(method, path)] = (status, hdrs, raw)

    def record(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)

    @property
    def last(self) -> Recorded:
        assert self.requests, "the stub received no request"
        return self.requests[-1]


def _handler_for(stub: Stub) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            stub.record(
                Recorded(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
            )
            if stub.hang_up:
                self.close_connection = True
                return
            if stub.delay_s:
                time.sleep(stub.delay_s)
            path = self.path.partition("?")[0]
            status, headers, raw = stub.replies.get(
                (self.command, path),
                (
                    404,
                    {"Content-Type": "application/json"},
                    b'{"error_code":"NOT_FOUND","message":"stub has no route"}',
                ),
            )
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("Connection", "close")
            self.end_headers()
            if raw and self.command != "HEAD":
                self.wfile.write(raw)
            self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    return Handler


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start without KILN_* settings and without proxies."""
    for name in list(os.environ):
        if name.upper() in ("KILN_URL", "KILN_TOKEN", "KILN_API_KEY") or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(s))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    s.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield s
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
