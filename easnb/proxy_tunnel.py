"""A tunnel through an HTTP proxy, opened as gRPC opens it (``CONNECT host:port``), for the doctor's
step that checks the proxy itself. Above ``proxy`` (which only reads the environment) and ``errors``."""

from __future__ import annotations

import socket

from .errors import EasnbError
from .proxy import Proxy


def tunnel(proxy: Proxy, host: str, port: int, timeout: float) -> socket.socket:
    """A socket through ``proxy`` to ``host:port`` (HTTP CONNECT, as gRPC opens it); ``EasnbError`` saying
    how the proxy failed otherwise. The answer read is bounded (8 KiB, ``timeout``)."""
    where = f"the HTTP proxy {proxy.address} (from {proxy.variable})"
    try:
        sock = socket.create_connection((proxy.host, proxy.port), timeout=timeout)
    except OSError as exc:
        raise EasnbError(f"{where} does not answer: {exc.strerror or exc}") from None
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if any(c in authority for c in "\r\n "):
        sock.close()
        raise EasnbError(f"{authority!r} cannot be sent to a proxy")
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if proxy.auth:
        lines.append(f"Proxy-Authorization: Basic {proxy.auth}")
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 8192:
            chunk = sock.recv(8192 - len(head))
            if not chunk:
                break
            head += chunk
    except OSError as exc:
        sock.close()
        raise EasnbError(f"{where} failed during CONNECT: {exc.strerror or exc}") from None
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    words = status.split()
    if len(words) < 2 or not words[0].startswith("HTTP/") or words[1] != "200":
        sock.close()
        said = repr(status[:80]) if status else "nothing (it closed the connection)"
        raise EasnbError(f"{where} refused a tunnel to {authority}: it answered {said}")
    return sock
