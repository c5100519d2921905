"""An HTTP CONNECT proxy on 127.0.0.1 for tests: it tunnels (to 127.0.0.1 only), refuses with a status, or hangs up."""

from __future__ import annotations

import socket
import threading


class ConnectProxy:
    """``answer`` is ``"tunnel"``, an HTTP status such as ``"403 Forbidden"``, ``"close"`` or ``"silent"``.

    ``requests`` keeps each CONNECT line received (and whether Proxy-Authorization came with it).
    """

    def __init__(self, answer: str = "tunnel") -> None:
        self.answer = answer
        self.requests: list[str] = []
        self._silent: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 8192:
            chunk = client.recv(4096)
            if not chunk:
                break
            head += chunk
        request = head.split(b"\r\n", 1)[0].decode("latin-1")
        self.requests.append(request + (" +auth" if b"proxy-authorization:" in head.lower() else ""))
        words = request.split()
        if self.answer == "silent":  # reads the CONNECT and never answers
            self._silent.append(client)
            return
        if self.answer == "close" or len(words) < 2 or words[0] != "CONNECT":
            client.close()
            return
        if self.answer != "tunnel":
            client.sendall(f"HTTP/1.1 {self.answer}\r\nContent-Length: 0\r\n\r\n".encode())
            client.close()
            return
        host, _, port = words[1].rpartition(":")
        if host not in ("127.0.0.1", "localhost"):  # loopback only
            client.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            client.close()
            return
        backend = socket.create_connection(("127.0.0.1", int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        rest = head.split(b"\r\n\r\n", 1)[1]
        if rest:
            backend.sendall(rest)
        for source, sink in ((client, backend), (backend, client)):
            threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self._listener.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
