"""The hint for an UNAVAILABLE call, chosen from what gRPC's details say and what the environment holds.

Every cause gRPC reports when it cannot connect gets its own hint: a proxy in the way
(down, refusing CONNECT, not resolving, closing), connection refused, a name that does not
resolve, a connect timeout or no route, TLS (untrusted certificate, wrong host name, a
plaintext server), an HTTP/1 server on the port, a server that closes at once, a Unix
socket that is not there. The detail strings are grpcio 1.85's (see tests/test_unavailable.py).

>>> unavailable_hint("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "
...     "Failed to connect to remote host: Connection refused", {"target": "127.0.0.1:1"})[:40]
'Nothing listens on 127.0.0.1:1 (the conn'
"""

from __future__ import annotations

import re
from typing import Any

from .proxy import Proxy, bypass, ignored_variables, split_target

UNAVAILABLE_HINT = (
    "Check the endpoint (the console domain plus :80, without http://) and that the "
    "network reaches it. A VPC endpoint (with .vpc.) works only from inside the same VPC "
    "and region, and the security group must allow the port."
)
VPC_HINT = (
    "This is a VPC endpoint: it is reachable only from inside the service's VPC and "
    "region. From elsewhere use the public endpoint (the same name without .vpc.)."
)
TLS_HINT = (
    "The TLS handshake failed. Use http:// (or tls=False) for a plaintext server such as the EAS "
    "gateway on port 80, https:// (or tls=True) for a TLS one; for a private certificate authority "
    "pass root_certificates=<PEM file or bytes>."
)
_PROXY_STATUS = re.compile(r"HTTP proxy returned response code (\d+)")
_HTTP1 = re.compile(r"Trying to connect an http1\.x server \(HTTP status (\d+)\)")


def unavailable_hint(details: str, context: dict[str, Any]) -> str | None:
    """The hint for UNAVAILABLE ``details`` on a connection described by ``context`` (``target``,
    ``tls``, ``is_vpc``, ``proxy``: the ``Proxy`` gRPC uses, if any); ``None`` leaves the default."""
    target = str(context.get("target", ""))
    proxy: Proxy | None = context.get("proxy")
    lower = details.lower()
    if "too many pings" in lower or "too_many_pings" in details:
        return (
            "The server refused this client's keepalive pings as too frequent: use a longer "
            "easnb.Keepalive(time_s=...); stock gRPC servers accept one ping per 300 s."
        )
    if proxy is not None and (proxy.named_in(details, target) or _PROXY_STATUS.search(details)):
        return _proxy_hint(details, target, proxy)
    hint = _cause_hint(details, lower, target, context)
    if proxy is not None and hint is not None:
        hint += f" (The call goes through the HTTP proxy {proxy.address}, from {proxy.variable}.)"
    return hint


def _proxy_hint(details: str, target: str, proxy: Proxy) -> str:
    lower = details.lower()
    status = _PROXY_STATUS.search(details)
    if status and status.group(1) == "407":
        problem = "the proxy wants credentials (HTTP 407): put them in its URL, http://user:password@host:port"
    elif status:
        problem = f"the proxy refused to open a tunnel to {target} (HTTP {status.group(1)}): its rules do not allow it"
    elif "resolving" in lower:
        problem = f"the proxy's host name {proxy.host} does not resolve"
    elif "connection refused" in lower:
        problem = "nothing answers at the proxy's address (the proxy is down, or the address is wrong)"
    elif any(w in lower for w in ("timed out", "timeout", "handshaker shutdown", "endpoint closing")):
        problem = "the proxy does not answer (it took the connection but opened no tunnel in time)"
    elif "socket closed" in lower or "reset by peer" in lower:
        problem = "the proxy closed the connection"
    else:
        problem = "the connection through it failed"
    return (
        f"This call goes through the HTTP proxy {proxy.address} (from {proxy.variable}), and {problem}. "
        f"{bypass(target)}. Otherwise fix the proxy, or its variable."
    )


def _cause_hint(details: str, lower: str, target: str, context: dict[str, Any]) -> str | None:
    host, port = split_target(target)
    vpc = f"{VPC_HINT} " if context.get("is_vpc") else ""
    if "handshake failed" in lower or "ssl_error" in lower or "hostname verification" in lower:
        if "certificate_verify_failed" in lower:
            return (
                "The server's TLS certificate is not trusted here (self-signed, or from a private certificate "
                "authority): pass root_certificates=<the authority's PEM file or bytes> to easnb.connect."
            )
        if "hostname verification" in lower:
            return (
                f"The server's TLS certificate is not issued for {host}: connect by a name it names "
                "(often a domain, not an IP address), or ask for a certificate that names this one."
            )
        if "wrong_version_number" in lower:
            return (
                "The server answers without TLS: use http:// (or tls=False) for this endpoint, as for the "
                "EAS gateway on port 80."
            )
        return TLS_HINT
    if context.get("tls") and any(w in lower for w in ("handshake read failed", "socket closed", "reset by peer")):
        return (
            "The server closed the connection during the TLS handshake: it probably speaks plaintext, so use "
            "http:// (or tls=False); otherwise check the port."
        )
    if "resolving" in lower or "domain name not found" in lower or "dns resolution failed" in lower:
        return (
            f"{vpc}The host name {host} does not resolve (DNS): check it against the console "
            "(the endpoint's domain, without http://), and the machine's DNS settings."
        )
    if "connection refused" in lower:
        note = _ignored_note()
        return (
            f"Nothing listens on {target} (the connection was refused): check the port (80 for an EAS "
            f"endpoint) and that the server is running.{note}"
        )
    if any(w in lower for w in ("timed out", "timeout occurred", "handshaker shutdown", "no route to host", "network is unreachable")):
        why = "found no route" if "route" in lower or "unreachable" in lower else "timed out"
        return (
            f"{vpc}The connection to {target} {why}: a firewall or security group drops it, or this network "
            f"does not reach it (check the port, {port or 'its number'}, is open to this machine).{_ignored_note()}"
        )
    http1 = _HTTP1.search(details)
    if http1:
        return (
            f"An HTTP/1.x server answered on {target} (HTTP status {http1.group(1)}), not a gRPC one: check the "
            "port; a REST endpoint of the same service is not its gRPC endpoint."
        )
    if not context.get("tls") and any(w in lower for w in ("socket closed", "reset by peer", "endpoint closing")):
        return (
            "The server closed the connection at once. If it speaks TLS, connect with https:// "
            "(or tls=True); otherwise check the endpoint's port, and that the server is up."
        )
    if target.startswith("unix:") and "no such file" in lower:
        return f"The Unix socket {target.removeprefix('unix:')} does not exist: is the server running, and is the path right?"
    if context.get("is_vpc"):
        return f"{VPC_HINT} {UNAVAILABLE_HINT}"
    return None


def proxy_note(context: dict[str, Any]) -> str:
    """For a deadline: the proxy the call went through, if any (a silent proxy looks like a slow server)."""
    proxy: Proxy | None = context.get("proxy")
    if proxy is None:
        return ""
    return (
        f" The call goes through the HTTP proxy {proxy.address} (from {proxy.variable}); if that proxy does not "
        f"answer, bypass it: {bypass(str(context.get('target', '')))}."
    )


def fork_hint() -> str:
    """For a call gRPC never ended in a forked child (``easnb.fork.Unanswered``)."""
    import os

    setting = os.environ.get("GRPC_ENABLE_FORK_SUPPORT")
    off = setting is not None and setting.strip().lower() in ("0", "false", "no", "off")
    cause = (
        f"GRPC_ENABLE_FORK_SUPPORT={setting} turns off the fork handling gRPC needs in a child: unset it. "
        if off else "gRPC's state inherited from the parent process does not work in this child. "
    )
    return cause + "Or start the worker processes fresh: multiprocessing.get_context('spawn')."


def _ignored_note() -> str:
    ignored = ignored_variables()
    if not ignored:
        return ""
    return (
        f" ({', '.join(ignored)} {'is' if len(ignored) == 1 else 'are'} set, but gRPC reads only the lower-case "
        "proxy variables, so it connected directly.)"
    )
