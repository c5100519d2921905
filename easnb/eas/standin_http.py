"""The stand-in's HTTP side: every request checked before the API sees it, every refusal a JSON error.

Each request must arrive whole (head and body) within ``REQUEST_S`` of when the stand-in began
waiting for it, idle keep-alive time included, and at most ``MAX_CONNECTIONS`` are open at once (more
are closed at once): a client sending a byte at a time cannot hold a thread, nor many clients many.

Checks, in order: ``Host`` is loopback (DNS rebinding), the body has a length under
``MAX_BODY`` (never read past it), the SDK's signature with the stand-in's AccessKey pair
(``signature.Verifier``), the body is JSON. A malformed request gets the API's JSON error
with a status line, not a dropped connection.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .signature import Refused

MAX_BODY = 1 << 20  # a service's JSON configuration is a few KiB
_DRAIN_BYTES, _DRAIN_S = 16 << 20, 2.0
REQUEST_S = 10.0  # the SDK sends a request in milliseconds
MAX_CONNECTIONS = 64


class Server(ThreadingHTTPServer):
    """A thread per connection, at most ``MAX_CONNECTIONS`` of them: one past that is closed unanswered."""

    daemon_threads = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (reset, timed out) ends its connection quietly; anything else is one
        line on stderr, never socketserver's traceback in the terminal running the stand-in."""
        import sys

        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            print(f"easnb eas-local: a connection failed: {type(error).__name__}", file=sys.stderr, flush=True)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Deadline(io.RawIOBase):
    """The connection's reads, each given only what is left of the handler's ``deadline`` (a ``time.monotonic()``)."""

    def __init__(self, connection: socket.socket, handler: Any) -> None:
        self._connection, self._handler = connection, handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._handler.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self._connection.settimeout(left)
        return self._connection.recv_into(buffer)


def _drain(connection: socket.socket) -> None:
    """Half-close, then read and drop at most ``_DRAIN_BYTES`` for ``_DRAIN_S`` seconds."""
    try:
        connection.shutdown(socket.SHUT_WR)
        ends, dropped = time.monotonic() + _DRAIN_S, 0
        while dropped < _DRAIN_BYTES and (left := ends - time.monotonic()) > 0:
            connection.settimeout(left)
            chunk = connection.recv(65536)
            if not chunk:
                return
            dropped += len(chunk)
    except OSError:
        return


def handler(stand_in: Any) -> type[BaseHTTPRequestHandler]:
    """The request handler of ``stand_in`` (a ``LocalEas``): checks, then ``stand_in.handle``."""

    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_S  # each read; the whole request is bounded by the timer in handle_one_request
        _drain = False

        def setup(self) -> None:
            super().setup()
            self.deadline = time.monotonic() + REQUEST_S
            self.rfile = io.BufferedReader(_Deadline(self.connection, self))

        def handle_one_request(self) -> None:
            self.deadline = time.monotonic() + REQUEST_S  # for this request, idle keep-alive time included
            super().handle_one_request()

        def _serve(self) -> None:
            try:
                status, answer = self._answer()
            except Refused as exc:
                status, answer = exc.status, {"Code": exc.code, "Message": exc.message}
            except Exception as exc:  # a malformed request gets an answer, never a dropped connection
                status, answer = 500, {"Code": "InternalError", "Message": f"the stand-in failed: {type(exc).__name__}"}
            self._send(status, answer)

        def _answer(self) -> tuple[int, dict[str, Any]]:
            if self.headers.get("Host", "") not in stand_in.hosts():
                self.close_connection = True
                raise Refused(400, "InvalidHost", "this stand-in answers only Host 127.0.0.1 or localhost")
            raw = self._body()
            parts = urlsplit(self.path)
            key_id = stand_in.verifier.verify(self.command, self.path, self.headers, raw)
            try:
                body = json.loads(raw) if raw else None
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                raise Refused(400, "InvalidParameter", "the body is not JSON") from None
            stand_in.record(self.command, parts.path, self.headers.get("x-acs-action", ""), parse_qs(parts.query),
                            sorted(h.lower() for h in self.headers), body, key_id)
            reply: tuple[int, dict[str, Any]] = stand_in.handle(self.command, parts.path, parse_qs(parts.query), body)
            return reply

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                raise Refused(411, "MissingContentLength", "send the body with a Content-Length")
            length = self.headers.get("Content-Length") or "0"
            if not length.isdigit():
                self.close_connection = True
                raise Refused(400, "InvalidParameter", "Content-Length is not a number")
            if int(length) > MAX_BODY:
                self.close_connection = self._drain = True  # the body is never kept
                raise Refused(413, "RequestEntityTooLarge", f"the body is over {MAX_BODY} bytes")
            try:
                return self.rfile.read(int(length))
            except TimeoutError:
                self.close_connection = True
                raise Refused(408, "RequestTimeout", f"the request did not arrive within {REQUEST_S:g} s") from None
            finally:
                self.connection.settimeout(REQUEST_S)  # the answer's writes

        def _send(self, status: int, answer: dict[str, Any]) -> None:
            data = json.dumps({"RequestId": str(uuid.uuid4()).upper(), **answer}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            if self._drain:  # read and drop what the client is still sending, so it sees the answer, not a reset
                _drain(self.connection)

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            # http.server's own refusals (bad request line, headers, method) as the API's JSON errors
            self.close_connection = True
            self.request_version = "HTTP/1.0" if self.request_version == "HTTP/0.9" else self.request_version  # a status line
            self._send(code, {"Code": "BadRequest" if code < 500 else "InternalError", "Message": message or "malformed request"})

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:  # quiet: the requests are recorded instead
            pass

    return Handler
