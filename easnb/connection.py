"""A connection to an EAS or V2 inference service: one channel, the token, deadlines.

>>> conn = connect("localhost:50051", token="...")    # doctest: +SKIP
>>> conn.live(), conn.model_metadata("iris").inputs   # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from . import _proto
from ._proto import V2_SERVICE, method_path
from .endpoint import Endpoint, parse_endpoint
from .frames import frame_to_inputs, is_frame
from .errors import EasnbError, TokenError, UnavailableError, translate
from .inference import Inputs, Outputs, decode_response, encode_request
from .results import InferResult, ModelMetadata, ServerMetadata, TensorMetadata

__all__ = ["DEFAULT", "Connection", "Keepalive", "connect"]

T = TypeVar("T")


class _Default:
    """The type of ``DEFAULT``: "use the connection's setting", distinct from ``None``."""

    def __repr__(self) -> str:
        return "DEFAULT"


#: Per-call timeout meaning "the connection's timeout"; ``None`` means no deadline.
DEFAULT: Any = _Default()


@dataclass(frozen=True)
class Keepalive:
    """HTTP/2 keepalive pings.

    The defaults suit stock gRPC servers, which answer pings more often than every
    five minutes on a quiet connection with GOAWAY "too_many_pings": pings go out
    only while calls are in flight. Turn ``permit_without_calls`` on when the
    server allows pings on idle connections and something between drops them.
    """

    time_s: float = 60.0
    timeout_s: float = 20.0
    permit_without_calls: bool = False

    def options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.keepalive_time_ms", int(self.time_s * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.timeout_s * 1000)),
            ("grpc.keepalive_permit_without_calls", int(self.permit_without_calls)),
            ("grpc.http2.max_pings_without_data", 0),
        ]


def clean_token(token: str | None) -> str | None:
    """The token without surrounding spaces or a pasted ``Bearer `` prefix; checked sendable."""
    if token is None:
        return None
    if not isinstance(token, str):
        raise TokenError(f"The token must be a string, not {type(token).__name__}.")
    token = token.strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    for position, char in enumerate(token):
        if not 33 <= ord(char) <= 126:
            kind = "non-ASCII character" if ord(char) > 126 else "space or control character"
            raise TokenError(f"The token has a {kind} at position {position}; a token is printable ASCII.")
    return token or None


def channel_options(
    keepalive: Keepalive = Keepalive(), max_message_bytes: int = -1, options: Mapping[str, Any] | None = None
) -> list[tuple[str, Any]]:
    """gRPC channel arguments: message limits (none by default), keepalive, quick reconnects."""
    settings = {
        "grpc.max_send_message_length": max_message_bytes,
        "grpc.max_receive_message_length": max_message_bytes,
        # reconnect within about a second of a server coming back, not minutes later
        "grpc.min_reconnect_backoff_ms": 200,
        "grpc.initial_reconnect_backoff_ms": 200,
        "grpc.max_reconnect_backoff_ms": 1000,
        "grpc.primary_user_agent": "easnb",
        **dict(keepalive.options()),
        **(options or {}),
    }
    return list(settings.items())


def read_certificates(root_certificates: bytes | str | Path | None) -> bytes | None:
    if root_certificates is None or isinstance(root_certificates, bytes):
        return root_certificates
    return Path(root_certificates).read_bytes()


class Connection:
    """One reusable, thread-safe channel to a service, with its token and timeout.

    Use ``easnb.connect(...)``. Idempotent calls (live, ready, metadata) retry
    briefly on UNAVAILABLE; ``infer`` retries only when given ``retries=``.
    """

    def __init__(
        self,
        endpoint: str | Endpoint,
        token: str | None = None,
        timeout: float | None = 5.0,
        *,
        tls: bool | None = None,
        root_certificates: bytes | str | Path | None = None,
        keepalive: Keepalive = Keepalive(),
        max_message_bytes: int = -1,
        retries: int = 2,
        channel: grpc.Channel | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.endpoint = endpoint if isinstance(endpoint, Endpoint) else parse_endpoint(endpoint, tls=tls)
        self._token = clean_token(token)
        self._metadata = (("authorization", f"Bearer {self._token}"),) if self._token else ()
        self.timeout = timeout
        self.retries = retries
        self._owns_channel = channel is None
        if channel is None:
            settings = channel_options(keepalive, max_message_bytes, options)
            if self.endpoint.tls:
                credentials = grpc.ssl_channel_credentials(read_certificates(root_certificates))
                channel = grpc.secure_channel(self.endpoint.target, credentials, settings)
            else:
                channel = grpc.insecure_channel(self.endpoint.target, settings)
        self.channel = channel
        self._closed = False
        self._model_cache: dict[tuple[str, str], ModelMetadata] = {}
        self._stubs = {
            name: channel.unary_unary(
                method_path(V2_SERVICE, name),
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
            )
            for name, request, response in (
                ("ServerLive", _proto.ServerLiveRequest, _proto.ServerLiveResponse),
                ("ServerReady", _proto.ServerReadyRequest, _proto.ServerReadyResponse),
                ("ModelReady", _proto.ModelReadyRequest, _proto.ModelReadyResponse),
                ("ServerMetadata", _proto.ServerMetadataRequest, _proto.ServerMetadataResponse),
                ("ModelMetadata", _proto.ModelMetadataRequest, _proto.ModelMetadataResponse),
            )
        }
        # bytes in, bytes out: easnb's codec writes and reads the wire format itself.
        self._infer = channel.unary_unary(method_path(V2_SERVICE, "ModelInfer"))

    # -- plumbing ---------------------------------------------------------------------

    @property
    def has_token(self) -> bool:
        """Whether calls carry a token (the token itself is never shown)."""
        return self._token is not None

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata (holds the token: do not print it)."""
        return self._metadata

    def deadline(self, timeout: float | None = DEFAULT) -> float | None:
        """The timeout of a call: its own, or the connection's for ``DEFAULT``."""
        return self.timeout if timeout is DEFAULT else timeout

    def call(
        self,
        method: str,
        invoke: Callable[[float | None], T],
        timeout: float | None = DEFAULT,
        retries: int = 0,
    ) -> T:
        """Run ``invoke(deadline)``, translating gRPC errors and retrying UNAVAILABLE ``retries`` times."""
        if self._closed:
            raise EasnbError("This connection is closed.", hint="Open a new one with easnb.connect(...).")
        seconds = self.deadline(timeout)
        for attempt in range(retries + 1):
            try:
                with translate(
                    target=self.endpoint.target,
                    method=method,
                    token=self._token,
                    timeout=seconds,
                    is_vpc=self.endpoint.is_vpc,
                ):
                    return invoke(seconds)
            except UnavailableError:
                if attempt == retries:
                    raise
                time.sleep(min(0.1 * 2**attempt, 1.0))
        raise AssertionError("unreachable")

    def _unary(self, name: str, request: Any, timeout: float | None, retries: int | None = None) -> Any:
        stub = self._stubs[name]
        return self.call(
            name,
            lambda seconds: stub(request, timeout=seconds, metadata=self._metadata),
            timeout,
            self.retries if retries is None else retries,
        )

    # -- the V2 calls -------------------------------------------------------------------

    def live(self, timeout: float | None = DEFAULT) -> bool:
        """Whether the server is live."""
        return self._unary("ServerLive", _proto.ServerLiveRequest(), timeout).live

    def ready(self, timeout: float | None = DEFAULT) -> bool:
        """Whether the server is ready for inference."""
        return self._unary("ServerReady", _proto.ServerReadyRequest(), timeout).ready

    def model_ready(self, name: str, version: str = "", timeout: float | None = DEFAULT) -> bool:
        """Whether a model (and version) is ready for inference."""
        request = _proto.ModelReadyRequest(name=name, version=version)
        return self._unary("ModelReady", request, timeout).ready

    def server_metadata(self, timeout: float | None = DEFAULT) -> ServerMetadata:
        """The server's name, version and extensions."""
        reply = self._unary("ServerMetadata", _proto.ServerMetadataRequest(), timeout)
        return ServerMetadata(reply.name, reply.version, tuple(reply.extensions))

    def model_metadata(self, name: str, version: str = "", timeout: float | None = DEFAULT) -> ModelMetadata:
        """A model's versions, platform, inputs and outputs."""
        reply = self._unary("ModelMetadata", _proto.ModelMetadataRequest(name=name, version=version), timeout)
        meta = model_metadata_from(reply)
        self._model_cache[(name, version)] = meta
        return meta

    def cached_model_metadata(self, name: str, version: str = "") -> ModelMetadata:
        """``model_metadata``, asked of the server once per model and version."""
        cached = self._model_cache.get((name, version))
        return cached if cached is not None else self.model_metadata(name, version)

    def infer(
        self,
        model: str,
        inputs: Inputs | Any,
        outputs: Outputs = None,
        version: str = "",
        parameters: Mapping[str, Any] | None = None,
        request_id: str = "",
        *,
        timeout: float | None = DEFAULT,
        raw: bool = True,
        retries: int = 0,
        copy: bool = False,
        bytes_as_str: bool = False,
    ) -> InferResult:
        """Run ``model`` on ``inputs`` (a dict of name -> array, or a DataFrame).

        Raw contents are sent unless ``raw=False``. Output arrays are read-only views
        of the reply unless ``copy=True``; BYTES come back as bytes unless ``bytes_as_str``.
        """
        data = self.encode_infer(model, inputs, outputs, version, parameters, request_id, raw)
        reply = self.call(
            "ModelInfer",
            lambda seconds: self._infer(data, timeout=seconds, metadata=self._metadata),
            timeout,
            retries,
        )
        return decode_response(reply, copy=copy, bytes_as_str=bytes_as_str)

    def encode_infer(
        self,
        model: str,
        inputs: Inputs | Any,
        outputs: Outputs = None,
        version: str = "",
        parameters: Mapping[str, Any] | None = None,
        request_id: str = "",
        raw: bool = True,
    ) -> bytes:
        """The serialized request ``infer`` would send (DataFrames matched to the model's inputs)."""
        if is_frame(inputs):
            inputs = frame_to_inputs(inputs, self.cached_model_metadata(model, version))
        return encode_request(model, inputs, outputs, version, parameters, request_id, raw)

    def infer_frame(
        self,
        model: str,
        frame: Any,
        batch_size: int = 1024,
        concurrency: int = 8,
        outputs: list[str] | None = None,
        retries: int = 2,
        progress: bool = True,
        errors: str = "raise",
        version: str = "",
        timeout: float | None = None,
    ) -> Any:
        """Score a whole DataFrame; the result is aligned with ``frame.index``.

        Batches of ``batch_size`` rows, up to ``concurrency`` in flight on this one
        channel, answers put back in order. UNAVAILABLE, DEADLINE_EXCEEDED and
        RESOURCE_EXHAUSTED batches are retried ``retries`` times with backoff. Batches
        that still fail raise ``BatchError`` (with ``.partial`` and ``.failures``), or
        with ``errors="keep"`` come back as rows with an ``error`` column. Ctrl-C
        cancels what is in flight.
        """
        from .batch import infer_frame

        return infer_frame(self, model, frame, batch_size, concurrency, outputs, retries, progress, errors, version, timeout)

    # -- any other service ----------------------------------------------------------------

    def service(self, proto: str | Path, name: str, include: tuple[str | Path, ...] = ()) -> Any:
        """A client for any service in a ``.proto`` file, with this connection's token and errors.

        >>> greeter = conn.service("protos/helloworld.proto", "helloworld.GreeterService")  # doctest: +SKIP
        >>> greeter.SayHello(name="World").message                                          # doctest: +SKIP
        'Hello, World!'
        """
        from .services import ServiceClient

        return ServiceClient(self, proto, name, include)

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the channel (only if this connection opened it). Safe to call twice."""
        if not self._closed:
            self._closed = True
            if self._owns_channel:
                self.channel.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        security = "TLS" if self.endpoint.tls else "plaintext"
        token = "token set" if self._token else "no token"
        state = ", closed" if self._closed else ""
        return f"<Connection {self.endpoint.target} {security}, {token}, timeout {self.timeout}s{state}>"


def model_metadata_from(reply: Any) -> ModelMetadata:
    """A ``ModelMetadata`` from a ModelMetadataResponse message."""

    def tensors(items: Any) -> tuple[TensorMetadata, ...]:
        return tuple(TensorMetadata(t.name, t.datatype, tuple(t.shape)) for t in items)

    return ModelMetadata(
        name=reply.name,
        versions=tuple(reply.versions),
        platform=reply.platform,
        inputs=tensors(reply.inputs),
        outputs=tensors(reply.outputs),
        properties=dict(sorted(reply.properties.items())),
    )


def connect(
    endpoint: str | Endpoint | None = None,
    token: str | None = None,
    timeout: float | None = 5.0,
    **options: Any,
) -> Connection:
    """Connect to a service; ``endpoint`` and ``token`` default to ``EASNB_ENDPOINT`` / ``EASNB_TOKEN``.

    >>> conn = connect("http://name.123.cn-hangzhou.pai-eas.aliyuncs.com/", token="...")  # doctest: +SKIP
    """
    if endpoint is None:
        endpoint = os.environ.get("EASNB_ENDPOINT")
        if not endpoint:
            from .errors import EndpointError

            raise EndpointError(
                "No endpoint was given and EASNB_ENDPOINT is not set.",
                hint="Pass connect('host:port', token=...) or set EASNB_ENDPOINT; "
                "for a local try, start the demo: python -m easnb demo.",
            )
    if token is None:
        token = os.environ.get("EASNB_TOKEN")
    return Connection(endpoint, token, timeout, **options)
