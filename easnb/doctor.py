"""A connection doctor: each step from the endpoint text to a ready model, timed, with the hint that fits.

Steps: endpoint, proxy, DNS, TCP, TLS (or plaintext), HTTP/2, token, V2 or not, model ready. When
gRPC would go through an HTTP proxy (``$http_proxy`` and the like), the proxy step says so and
whether it opens a tunnel, and the later steps go through it as gRPC does.
The first failing step says what to do; later steps are skipped. No form of the token
shows in what it found (``easnb.redaction``).

>>> easnb.doctor("http://grpc-test.123.cn-hangzhou.pai-eas.aliyuncs.com/", token)   # doctest: +SKIP
"""

from __future__ import annotations

import os
import socket
import ssl
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import display
from .markup import Markup, html
from .endpoint import EAS_DOMAIN, Endpoint, parse_endpoint
from .errors import AuthenticationError, EasnbError, UnimplementedError
from .proxy import bypass, ignored_variables, proxy_for
from .proxy_tunnel import tunnel
from .redaction import redact
from .unreachable import TLS_HINT, UNAVAILABLE_HINT, VPC_HINT
from .settings import Settings, make_settings

if TYPE_CHECKING:
    from .connection import Connection

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


@dataclass
class Step:
    """One step: its name, whether it passed (``None``: skipped), how long it took, what it found, what to do."""

    name: str
    ok: bool | None
    ms: float = 0.0
    detail: str = ""
    hint: str = ""


@dataclass
class Diagnosis:
    """The steps, in order; ``ok`` when every step that ran passed."""

    endpoint: str
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok is not False for s in self.steps)

    @property
    def failed(self) -> Step | None:
        """The first failing step, if any."""
        return next((s for s in self.steps if s.ok is False), None)

    def __repr__(self) -> str:
        lines = [f"easnb doctor: {self.endpoint}"]
        for s in self.steps:
            mark = {True: "ok  ", False: "FAIL", None: "skip"}[s.ok]
            lines.append(f"  {mark} {s.name:<10} {s.ms:7.1f} ms  {s.detail}")
            if s.hint and s.ok is not True:
                lines.append(f"       hint: {s.hint}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = [
            (mark(s.ok), s.name, html("<span style='white-space:nowrap'>{:.1f}&nbsp;ms</span>", s.ms), s.detail,
             s.hint if s.ok is not True else "")
            for s in self.steps
        ]
        return display.table(("", "step", "time", "found", "what to do"), rows, caption=f"easnb doctor: {self.endpoint}")


_MARKS = {True: ("pass", "#2a9d3a"), False: ("FAIL", "#d33"), None: ("skipped", "#888")}


def mark(ok: bool | None) -> Markup:
    """A step's mark as a word on a coloured badge: no emoji font needed (Debian's Chromium has none)."""
    word, colour = _MARKS[ok]
    return html(
        "<span class='easnb-mark' style='background:{};color:#fff;border-radius:3px;padding:0 6px;"
        "font-weight:bold;font-size:0.85em;white-space:nowrap'>{}</span>", colour, word,
    )


def doctor(
    endpoint: str | Settings | Connection | None = None, token: str | None = None, model: str | None = None, timeout: float = 5.0
) -> Diagnosis:
    """Diagnose a connection step by step; ``endpoint`` and ``token`` default to ``EASNB_ENDPOINT`` / ``EASNB_TOKEN``.

    Given a ``Connection`` (or its ``settings``), every step uses its settings (TLS roots, client
    certificate, headers, keepalive, limits, interceptors), with ``timeout`` and no retries.
    """
    from .arguments import name_or_none, number
    from .connection import Connection

    model, timeout = name_or_none(model, "model"), number(timeout, "timeout")
    given: Settings | None = endpoint.settings if isinstance(endpoint, Connection) else endpoint if isinstance(endpoint, Settings) else None
    if given is not None:
        text = given.endpoint.target
    else:
        text = endpoint if isinstance(endpoint, str) else os.environ.get("EASNB_ENDPOINT", "")
        token = token if token is not None else os.environ.get("EASNB_TOKEN")
    secret: Any = token if given is None else given.token
    result = Diagnosis(redact(text, secret))
    state: dict[str, Any] = {}

    def settings() -> Settings:
        """What the gRPC steps connect with: the given settings, or ones made from the text and token."""
        if given is not None:
            return given.replace(timeout=timeout, retries=0)
        return make_settings(state["endpoint"], token, timeout, retries=0)

    def tls_context() -> ssl.SSLContext:
        chosen = settings()
        context = ssl.create_default_context(cadata=chosen.root_certificates.decode("ascii") if chosen.root_certificates else None)
        context.set_alpn_protocols(["h2"])
        # judge certificates as gRPC does: Python 3.13 made its default check stricter (RFC 5280 key usage
        # on CAs), which a private CA gRPC accepts may fail, and the doctor would blame a working setup
        context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
        if chosen.certificate_chain is not None and chosen.private_key is not None:
            _load_client_certificate(context, chosen.certificate_chain, chosen.private_key.reveal())
        return context

    def run(name: str, check: Callable[[], str], hint: Callable[[Exception], str]) -> bool:
        started = time.perf_counter()
        try:
            detail = check()
            result.steps.append(Step(name, True, (time.perf_counter() - started) * 1000, redact(detail, secret)))
            return True
        except Exception as exc:
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            ms = (time.perf_counter() - started) * 1000
            result.steps.append(Step(name, False, ms, redact(message, secret), redact(hint(exc), secret)))
            return False

    def parse() -> str:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            state["endpoint"] = given.endpoint if given is not None else parse_endpoint(text)
        found: Endpoint = state["endpoint"]
        notes = [f"{found.target}, {'TLS' if found.tls else 'plaintext'}"]
        notes += [str(w.message) for w in caught]
        return "; ".join(notes)

    def proxy() -> str:
        found: Endpoint = state["endpoint"]
        state["proxy"] = used = proxy_for(found.target, settings().channel_args)
        if used is None:
            ignored = ignored_variables()
            return "none: gRPC connects directly" + (f" ({', '.join(ignored)} set, but gRPC ignores upper case)" if ignored else "")
        tunnel(used, found.host, found.port, timeout).close()
        return f"HTTP proxy {used.address} (from {used.variable}) opens a tunnel to {found.target}"

    def dial() -> socket.socket:
        found: Endpoint = state["endpoint"]
        if state.get("proxy") is not None:
            return tunnel(state["proxy"], found.host, found.port, timeout)
        return socket.create_connection(state["address"][:2], timeout=timeout)

    def resolve() -> str:
        found: Endpoint = state["endpoint"]
        if state.get("proxy") is not None:
            return "left to the proxy"
        infos = socket.getaddrinfo(found.host, found.port, type=socket.SOCK_STREAM)
        state["address"] = infos[0][4]
        return ", ".join(sorted({str(i[4][0]) for i in infos}))

    def connect_tcp() -> str:
        dial().close()
        return f"port {state['endpoint'].port} open" + (" (through the proxy)" if state.get("proxy") else "")

    def secure() -> str:
        found: Endpoint = state["endpoint"]
        if not found.tls:
            return "plaintext (no TLS asked for)"
        context = tls_context()
        with dial() as raw:
            with context.wrap_socket(raw, server_hostname=found.host) as tls:
                return f"{tls.version()}, ALPN {tls.selected_alpn_protocol() or 'none'}"

    def http2() -> str:
        found: Endpoint = state["endpoint"]
        with dial() as raw:
            sock: Any = raw
            if found.tls:
                sock = tls_context().wrap_socket(raw, server_hostname=found.host)
            sock.sendall(PREFACE + EMPTY_SETTINGS)
            head = sock.recv(9)
        if len(head) < 9 or head[3] != 0x04:
            raise EasnbError(f"the server did not answer with HTTP/2 SETTINGS (got {head[:9]!r})")
        return "SETTINGS received"

    def call_v2() -> str:
        with Connection(settings()) as conn:
            try:
                conn.live()
                state["v2"] = True
                return "token accepted" if conn.has_token else "no token needed"
            except UnimplementedError:
                state["v2"] = False
                return "token accepted (the service answered UNIMPLEMENTED)" if conn.has_token else "the service answers"

    def speaks_v2() -> str:
        if state.get("v2"):
            return "V2 (inference.GRPCInferenceService)"
        raise EasnbError("not a V2 server: it answers, but not inference.GRPCInferenceService")

    def model_ready() -> str:
        with Connection(settings()) as conn:
            if not conn.model_ready(model or ""):
                raise EasnbError(f"model {model!r} is not ready (or unknown)")
        return f"model {model} ready"

    steps: list[tuple[str, Callable[[], str], Callable[[Exception], str]]] = [
        ("endpoint", parse, lambda exc: getattr(exc, "hint", "")),
        ("proxy", proxy, lambda exc: f"{bypass(state['endpoint'].target)}. Otherwise start or fix the proxy."),
        ("DNS", resolve, lambda exc: _network_hint(state, "The host name does not resolve: check it against the console.")),
        ("TCP", connect_tcp, lambda exc: _network_hint(state, "Nothing answers on that port: check the port (80 for EAS).")),
        ("TLS", secure, lambda exc: TLS_HINT),
        ("HTTP/2", http2, lambda exc: _http2_hint(state)),
        ("token", call_v2, lambda exc: getattr(exc, "hint", "") if isinstance(exc, (AuthenticationError, EasnbError)) else ""),
        ("V2", speaks_v2, lambda exc: "Call its own service: conn.service('package.Service') (reflection) or with its .proto file."),
    ]
    if model:
        steps.append(("model", model_ready, lambda exc: "Check the name with conn.models() or the console; a deploying model needs time: conn.wait_until_ready(model)."))
    for index, (name, check, hint) in enumerate(steps):
        if not run(name, check, hint):
            result.steps += [Step(later, None) for later, _, _ in steps[index + 1 :]]
            break
    return result


def _load_client_certificate(context: ssl.SSLContext, chain: bytes, key: bytes) -> None:
    """Present the settings' client certificate, as gRPC does: ``ssl`` reads one only from a file, so it is
    written to a private temporary folder (mode 0700, the file 0600) and removed at once."""
    with tempfile.TemporaryDirectory(prefix="easnb-doctor-") as folder:
        path = os.path.join(folder, "client.pem")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
            file.write(chain.rstrip(b"\n") + b"\n" + key)
        context.load_cert_chain(path)


def _network_hint(state: dict[str, Any], base: str) -> str:
    found = state.get("endpoint")
    if found is not None and found.is_vpc:
        return f"{VPC_HINT} {base}"
    return f"{base} {UNAVAILABLE_HINT}"


def _http2_hint(state: dict[str, Any]) -> str:
    found = state.get("endpoint")
    if found is not None and not found.tls:
        return "The server does not speak plaintext HTTP/2 here. If it speaks TLS, use https:// (or tls=True)."
    return "The server does not speak HTTP/2 over TLS here: check the port, or use http:// for a plaintext server."


__all__ = ["EAS_DOMAIN", "Diagnosis", "Step", "doctor"]
