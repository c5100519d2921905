"""Which HTTP proxy gRPC puts between a channel and its server, decided as grpcio does.

gRPC (grpcio 1.85, checked by tests/test_unavailable.py) reads, when a channel is made:

- the channel option ``grpc.enable_http_proxy`` (0 turns proxies off) and ``grpc.http_proxy``;
- else the first non-empty of ``grpc_proxy``, ``https_proxy``, ``http_proxy``, lower case
  only (``HTTPS_PROXY`` and the like are ignored), as an ``http://[user:pass@]host[:port]`` URL;
- ``no_grpc_proxy``, else ``no_proxy``, lower case only: comma-separated entries, each a
  CIDR range (``127.0.0.0/8``) matched against an IP target, or a suffix of the host name
  (``.example.com``, ``127.0.0.1``); ``*`` is not special.

>>> proxy_for("127.0.0.1:50051", environ={"http_proxy": "http://10.0.0.1:3128"}).address
'10.0.0.1:3128'
>>> proxy_for("127.0.0.1:50051", environ={"http_proxy": "http://10.0.0.1:3128", "no_proxy": "127.0.0.0/8"}) is None
True
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

#: The variables gRPC reads, in its order.
PROXY_VARIABLES = ("grpc_proxy", "https_proxy", "http_proxy")
NO_PROXY_VARIABLES = ("no_grpc_proxy", "no_proxy")


@dataclass(frozen=True)
class Proxy:
    """A proxy gRPC uses: ``host``, ``port``, and where it was set (``variable``: ``$http_proxy``, an option)."""

    host: str
    port: int
    variable: str
    #: ``user:password`` from the URL, base64 as Proxy-Authorization wants it; never shown
    auth: str = field(default="", repr=False)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def named_in(self, details: str, target: str) -> bool:
        """Whether gRPC's error ``details`` are about the proxy (its address, or its name not resolving).

        gRPC names the address it dialled, which for a proxy given by name is the resolved IP:
        a port other than the target's then tells the two apart.
        """
        if f"{_ip_text(self.host)}:{self.port}" in details or f"resolving {self.host}:" in details:
            return True
        if self.port == split_target(target)[1]:
            return False
        return re.search(rf"(ipv4:|ipv6:)\S*:{self.port}(?!\d)", details) is not None


def split_target(target: str) -> tuple[str, int | None]:
    """``host:port`` (or ``[v6]:port``, or a ``dns:``/``ipv4:`` target) as ``(host, port)``."""
    text = target.split(":///", 1)[-1] if ":///" in target else target
    for scheme in ("dns:", "ipv4:", "ipv6:"):
        text = text.removeprefix(scheme)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    return host, int(port) if port.isdigit() else None


def proxy_for(target: str, options: Iterable[tuple[str, Any]] | Mapping[str, Any] | None = None,
              environ: Mapping[str, str] | None = None) -> Proxy | None:
    """The proxy a channel to ``target`` (``host:port``) with ``options`` goes through, or ``None``."""
    environ = os.environ if environ is None else environ
    settings = dict(options.items() if isinstance(options, Mapping) else options or ())
    if target.startswith(("unix:", "unix-abstract:", "vsock:")) or str(settings.get("grpc.enable_http_proxy", 1)) == "0":
        return None
    if settings.get("grpc.http_proxy"):
        url, variable = str(settings["grpc.http_proxy"]), "the option grpc.http_proxy"
    else:
        found = next(((name, environ[name]) for name in PROXY_VARIABLES if environ.get(name)), None)
        if found is None:
            return None
        variable, url = f"${found[0]}", found[1]
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return None  # gRPC ignores what is not http://host
    host, _ = split_target(target)
    if _excluded(host, environ):
        return None
    try:
        port = parts.port or 80
    except ValueError:
        return None
    auth = ""
    if parts.username is not None:
        auth = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
    return Proxy(parts.hostname, port, variable, auth)


def _excluded(host: str, environ: Mapping[str, str]) -> bool:
    text = next((environ[name] for name in NO_PROXY_VARIABLES if environ.get(name)), "")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        if "/" in entry and address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
        elif host.lower().endswith(entry.lower()):
            return True
    return False


def ignored_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """Proxy variables that are set but that gRPC ignores (upper case), as ``$NAME``."""
    environ = os.environ if environ is None else environ
    names = [n.upper() for n in (*PROXY_VARIABLES, *NO_PROXY_VARIABLES)]
    return [f"${n}" for n in names if environ.get(n) and n.lower() not in environ]


def bypass(target: str, environ: Mapping[str, str] | None = None) -> str:
    """How to go around the proxy for ``target``: both fixes, as text for a hint; a ``no_proxy``
    that is set but does not match ``target`` (``*``, ``.local``, ``localhost`` for 127.0.0.1) is named."""
    environ = os.environ if environ is None else environ
    host, _ = split_target(target)
    found = next(((name, environ[name]) for name in NO_PROXY_VARIABLES if environ.get(name)), None)
    unmatched, value = "", host
    if found is not None:
        name, text = found
        shown = text if len(text) <= 80 else text[:77] + "..."
        unmatched = (
            f"${name} is {shown!r}, but gRPC reads each entry only as a host-name suffix or an IP range "
            f"(no '*' for every host, no name-to-address matching), so none of it matches {host}. "
        )
        value = f"{text.rstrip(', ')},{host}" if len(text) <= 80 else host
    name = found[0] if found else "no_proxy"
    step = f"add {host} to ${name}" if found else f"set no_proxy={host}"
    return (
        f"{unmatched}To reach {host} directly, {step} before connecting "
        f"(os.environ[{name!r}] = {value!r}, or in the shell), or pass "
        "easnb.connect(..., options={'grpc.enable_http_proxy': 0})"
    )


def _ip_text(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host
