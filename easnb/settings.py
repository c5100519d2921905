"""Everything ``connect()`` takes, as one frozen value; every channel easnb opens is built from it.

The sync channel, ``easnb.aio``'s, ``infer_frame``'s background channel, a Dask worker's,
the doctor's and the widget's all come from ``Settings.open_channel`` or
``Settings.open_aio_channel``, so an option given once reaches every call.

>>> s = make_settings("localhost:50051", token="s3cret", headers={"x-team": "a"})
>>> s
Settings(localhost:50051 plaintext, token=***, timeout=5.0, retries=2, headers=('x-team',))
>>> s.replace(timeout=30).timeout
30
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from . import arguments
from .channel import Keepalive, channel_options
from .credentials import CallMetadata, HeaderValue, Headers, Token, call_metadata, check_headers, parse_token
from .endpoint import Endpoint, parse_endpoint
from .errors import ArgumentError, EasnbError
from .rpc_errors import error_context
from .redaction import redact

__all__ = ["OPTIONS", "PrivateKey", "Settings", "check_options", "make_settings"]

_SYNC_INTERCEPTORS = (
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
)


class PrivateKey:
    """A client certificate's private key (PEM bytes): never shown, never pickled."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        self._value = value

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return "PrivateKey(***)"

    def __reduce__(self) -> Any:
        raise EasnbError("A private key is never pickled.", hint="Read it from its file where it is needed.")


@dataclass(frozen=True, repr=False)
class Settings:
    """One connection's settings: where, who, how long, how often to retry, and the channel's make-up.

    ``timeout`` is seconds per call (``None``: no deadline); ``retries`` how many times an
    idempotent call is sent again on UNAVAILABLE; ``headers`` go with every call;
    ``root_certificates`` / ``certificate_chain`` / ``private_key`` are PEM bytes for TLS
    (a private certificate authority, a client certificate); ``max_message_bytes`` limits
    each message both ways (-1: none); ``options`` are raw gRPC channel arguments, applied
    last; ``interceptors`` are gRPC client interceptors: sync ones (``grpc.UnaryUnaryClientInterceptor``
    and kin) wrap every sync channel, ``grpc.aio`` ones every asyncio channel.
    """

    endpoint: Endpoint
    token: Token | None = None
    timeout: float | None = 5.0
    retries: int = 2
    headers: tuple[tuple[str, HeaderValue], ...] = ()
    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: PrivateKey | None = None
    keepalive: Keepalive = Keepalive()
    max_message_bytes: int = -1
    options: tuple[tuple[str, Any], ...] = ()
    interceptors: tuple[Any, ...] = ()

    # -- derived, computed once --------------------------------------------------------

    @cached_property
    def metadata(self) -> CallMetadata:
        """Every call's metadata: the token (as ``authorization: Bearer``) and the headers."""
        return call_metadata(self.token, dict(self.headers))

    def metadata_with(self, headers: Headers | None) -> CallMetadata:
        """One call's metadata: these settings' headers with that call's ``headers`` on top."""
        if not headers:
            return self.metadata
        return call_metadata(self.token, {**dict(self.headers), **dict(check_headers(headers))})

    @cached_property
    def channel_args(self) -> list[tuple[str, Any]]:
        """The gRPC channel arguments: message limits, keepalive, reconnect backoff, then ``options``."""
        return channel_options(self.keepalive, self.max_message_bytes, dict(self.options))

    @property
    def sync_interceptors(self) -> tuple[Any, ...]:
        return tuple(i for i in self.interceptors if isinstance(i, _SYNC_INTERCEPTORS))

    @property
    def aio_interceptors(self) -> tuple[Any, ...]:
        return tuple(i for i in self.interceptors if isinstance(i, grpc.aio.ClientInterceptor))

    def error_context(self) -> dict[str, Any]:
        """Where calls happen, for ``rpc_errors.from_rpc_error`` (a fresh dict each time: callers add to it)."""
        return error_context(self.endpoint, self.token, self.max_message_bytes, self.channel_args)

    def credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials for a TLS endpoint (``None`` for plaintext)."""
        if not self.endpoint.tls:
            return None
        key = self.private_key.reveal() if self.private_key is not None else None
        return grpc.ssl_channel_credentials(self.root_certificates, key, self.certificate_chain)

    # -- channels ----------------------------------------------------------------------

    def open_channel(self) -> grpc.Channel:
        """A new sync channel, its sync interceptors applied (nothing connects until the first call).

        Not used, though faster (measured ~45 us less client CPU a streamed token): grpcio's
        ``SingleThreadedUnaryStream`` option. Such a call's events are consumed only by the thread that
        iterates it, and after a ``cancel()`` (``break``, Stop, Ctrl-C, an idle limit) nothing public
        consumes the rest: the call, and the connection under it, stay open even after ``close()`` and
        garbage collection (grpcio 1.85, measured by counting the process's sockets)."""
        credentials = self.credentials()
        target = self.endpoint.target
        if credentials is None:
            channel = grpc.insecure_channel(target, self.channel_args)
        else:
            channel = grpc.secure_channel(target, credentials, self.channel_args)
        interceptors = self.sync_interceptors
        return grpc.intercept_channel(channel, *interceptors) if interceptors else channel

    def open_aio_channel(self) -> grpc.aio.Channel:
        """A new ``grpc.aio`` channel in the running event loop, its asyncio interceptors applied."""
        credentials = self.credentials()
        target, interceptors = self.endpoint.target, list(self.aio_interceptors) or None
        if credentials is None:
            return grpc.aio.insecure_channel(target, self.channel_args, interceptors=interceptors)
        return grpc.aio.secure_channel(target, credentials, self.channel_args, interceptors=interceptors)

    # -- values ------------------------------------------------------------------------

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (``timeout=30``, ``token=None``, ...)."""
        if "timeout" in changes:
            changes["timeout"] = arguments.seconds(changes["timeout"])
        return dataclasses.replace(self, **changes)

    def __getstate__(self) -> dict[str, Any]:
        # the fields only: derived values (the metadata holds the token) are made again where unpickled
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __repr__(self) -> str:
        parts = [f"{self.endpoint.target} {'TLS' if self.endpoint.tls else 'plaintext'}"]
        parts.append("token=***" if self.token is not None else "no token")
        parts += [f"timeout={self.timeout}", f"retries={self.retries}"]
        if self.headers:
            parts.append(f"headers={tuple(k for k, _ in self.headers)}")
        if self.root_certificates is not None:
            parts.append("root_certificates=<PEM>")
        if self.certificate_chain is not None:
            parts.append("client certificate")
        if self.keepalive != Keepalive():
            parts.append(f"keepalive={self.keepalive}")
        if self.max_message_bytes != -1:
            parts.append(f"max_message_bytes={self.max_message_bytes}")
        if self.options:
            parts.append(f"options={tuple(k for k, _ in self.options)}")
        if self.interceptors:
            parts.append(f"{len(self.interceptors)} interceptors")
        return f"Settings({', '.join(parts)})"


def _read_pem(value: bytes | str | Path | None, what: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if not isinstance(value, (str, Path)):
        raise EasnbError(f"{what} must be PEM bytes or a file path, not {type(value).__name__}.")
    try:
        return Path(value).read_bytes()
    except OSError as exc:
        raise EasnbError(f"Cannot read {what} from {str(value)!r}: {exc.strerror}.", hint="Pass the PEM file's path or its bytes.") from None


def _interceptors(values: Sequence[Any] | None) -> tuple[Any, ...]:
    found = tuple(values or ())
    for interceptor in found:
        if not isinstance(interceptor, (*_SYNC_INTERCEPTORS, grpc.aio.ClientInterceptor)):
            raise EasnbError(
                f"{type(interceptor).__name__} is not a gRPC client interceptor.",
                hint="Subclass grpc.UnaryUnaryClientInterceptor (sync calls) or grpc.aio.UnaryUnaryClientInterceptor (easnb.aio).",
            )
    return found


#: The options ``connect()`` takes besides endpoint, token and timeout (``channel`` is not a setting).
OPTIONS = ("headers", "tls", "root_certificates", "certificate_chain", "private_key", "keepalive", "max_message_bytes",
           "retries", "options", "interceptors")


def check_options(options: Mapping[str, Any], where: str = "connect()") -> None:
    """Refuse an option ``connect()`` does not take, naming it and the ones it does (an ``ArgumentError``)."""
    unknown = [name for name in options if name not in OPTIONS]
    if unknown:
        raise ArgumentError(
            f"{where} has no option {unknown[0]!r}.", argument=unknown[0],
            hint=f"Its options are: {', '.join(OPTIONS)} (and endpoint, token, timeout, channel).",
        )


def make_settings(
    endpoint: str | Endpoint,
    token: str | Token | None = None,
    timeout: float | None = 5.0,
    *,
    headers: Headers | None = None,
    tls: bool | None = None,
    root_certificates: bytes | str | Path | None = None,
    certificate_chain: bytes | str | Path | None = None,
    private_key: bytes | str | Path | PrivateKey | None = None,
    keepalive: Keepalive = Keepalive(),
    max_message_bytes: int = -1,
    retries: int = 2,
    options: Mapping[str, Any] | None = None,
    interceptors: Sequence[Any] | None = None,
) -> Settings:
    """``Settings`` from what a person passes to ``connect()``: each value checked, files read.

    Raises ``TokenError``, ``EndpointError`` or ``EasnbError`` naming the argument at fault.
    """
    token, problem = parse_token(token)  # the plain text leaves this frame before anything can fail
    if problem is not None:
        raise problem
    timeout, tls, max_message_bytes, retries, options = arguments.connection_call(
        endpoint, timeout, headers, tls, root_certificates, keepalive, max_message_bytes, retries, options
    )
    try:
        where = endpoint if isinstance(endpoint, Endpoint) else parse_endpoint(endpoint, tls=tls)
    except EasnbError as exc:  # a token pasted into the endpoint too stays out of the message
        raise type(exc)(redact(exc.message, token), hint=redact(exc.hint, token)) from None
    keepalive.options()  # raises for times that are not positive
    key = private_key if isinstance(private_key, PrivateKey) or private_key is None else PrivateKey(_read_pem(private_key, "private_key") or b"")
    chain = _read_pem(certificate_chain, "certificate_chain")
    if (key is None) != (chain is None):
        raise EasnbError("A client certificate needs both certificate_chain= and private_key=.")
    return Settings(
        endpoint=where,
        token=token,
        timeout=timeout,
        retries=retries,
        headers=check_headers(headers),
        root_certificates=_read_pem(root_certificates, "root_certificates"),
        certificate_chain=chain,
        private_key=key,
        keepalive=keepalive,
        max_message_bytes=max_message_bytes,
        options=tuple((options or {}).items()),
        interceptors=_interceptors(interceptors),
    )


def settings_of(kind: str, endpoint: Any, token: Token | str | None, timeout: Any, options: dict[str, Any]) -> Settings:
    """The settings of a new ``kind`` (``Connection`` or ``AsyncConnection``): ``endpoint`` itself when it is
    a ``Settings`` (nothing else may be given then: ``EasnbError``), else made from ``connect()``'s arguments
    (``token`` already parsed by the caller, so its plain text is in no frame here); a misspelt or
    unknown option is an ``ArgumentError``."""
    if isinstance(endpoint, Settings):
        if token is not None or options:
            raise EasnbError(f"{kind}(settings) takes no other settings.", hint="Use settings.replace(...) first.")
        return endpoint
    arguments.keywords(make_settings, options, "connect")
    check_options(options)
    return make_settings(endpoint, token, timeout, **options)
