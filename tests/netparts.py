"""Test parts that misbehave on the network: a proxy that drops connections silently, odd servers."""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc


class SilentDropProxy:
    """A TCP proxy on 127.0.0.1 that can stop forwarding the connections it has, like a middlebox.

    ``drop()`` blackholes every current connection: nothing is forwarded any more and
    nothing is closed (no FIN, no RST), as when a NAT or load balancer forgets an idle
    mapping. New connections are forwarded as usual.
    """

    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._dead: list[socket.socket] = []
        self._lock = threading.Lock()
        self._running = True
        self.connections = 0
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def drop(self) -> None:
        with self._lock:
            for sock in list(self._pairs):
                self._selector.unregister(sock)
                self._dead.append(sock)  # kept open: the peer never hears of it
            self._pairs.clear()

    def _loop(self) -> None:
        while self._running:
            with self._lock:
                events = self._selector.select(timeout=0.05)
                for key, _ in events:
                    if key.fileobj is self._listener:
                        client, _ = self._listener.accept()
                        backend = socket.create_connection(("127.0.0.1", self.backend_port))
                        self.connections += 1
                        for a, b in ((client, backend), (backend, client)):
                            self._pairs[a] = b
                            self._selector.register(a, selectors.EVENT_READ, None)
                        continue
                    sock = key.fileobj
                    peer = self._pairs.get(sock)  # type: ignore[arg-type]
                    if peer is None:
                        continue
                    try:
                        data = sock.recv(65536)  # type: ignore[union-attr]
                    except OSError:
                        data = b""
                    if not data:
                        for s in (sock, peer):
                            if s in self._pairs:
                                self._selector.unregister(s)
                                del self._pairs[s]
                            s.close()  # type: ignore[union-attr]
                        continue
                    peer.sendall(data)

    def close(self) -> None:
        self._running = False
        self._thread.join(2)
        for sock in [*self._pairs, *self._dead, self._listener]:
            sock.close()


def serve(handlers: list[Any], options: list[tuple[str, Any]] | None = None, **kwargs: Any) -> tuple[grpc.Server, int]:
    """A started grpc server on a free loopback port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), handlers=handlers, options=options or [], **kwargs)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def unary_handler(service: str, methods: dict[str, Callable[[bytes, grpc.ServicerContext], bytes]]) -> grpc.GenericRpcHandler:
    """A generic handler whose methods take and return raw bytes."""
    return grpc.method_handlers_generic_handler(
        service, {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in methods.items()}
    )


def wait_for(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if check():
            return True
        time.sleep(0.02)
    return check()
