"""A token-checking gateway in front of any gRPC server, as EAS puts one in front of a service.

Every method is forwarded as raw bytes (unary and streaming alike, which look the
same on the wire), with the caller's metadata less the token, and the backend's
status, details and metadata passed back, less any form of the backend's token.

>>> with Gateway("127.0.0.1:50051", token="secret") as gw:   # doctest: +SKIP
...     print(gw.endpoint)
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc

from ..redaction import redact
from .auth import check_authorization
from .server import SERVER_OPTIONS, Served

# HTTP/2 and gRPC headers the proxy's own channel sets for itself.
_HOP_BY_HOP = {"authorization", "user-agent", "te", "content-type", "grpc-timeout", "grpc-accept-encoding", "grpc-encoding"}


#: The start of the details of every refusal, so a client can tell which hop refused.
GATEWAY_REFUSED = "easnb gateway refused the call: "
BACKEND_REFUSED = "the backend behind the easnb gateway refused the call: "


class _Proxy(grpc.GenericRpcHandler):  # type: ignore[misc]  # grpcio ships no type hints
    def __init__(self, backend: grpc.Channel, token: str, backend_token: str) -> None:
        self._backend = backend
        self._token = token
        self._backend_token = backend_token
        self._backend_auth = (("authorization", f"Bearer {backend_token}"),) if backend_token else ()

    def _clean(self, metadata: Any) -> tuple[tuple[str, str | bytes], ...]:
        """The backend's metadata without its token: text values redacted, binary ones holding it dropped."""
        kept: list[tuple[str, str | bytes]] = []
        for key, value in metadata or ():
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            clean = redact(text, self._backend_token)
            if clean == text:
                kept.append((key, value))
            elif isinstance(value, str):
                kept.append((key, clean))
        return tuple(kept)

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = details.method

        def forward(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
            problem = check_authorization(context.invocation_metadata(), self._token) if self._token else None
            if problem:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, GATEWAY_REFUSED + problem)
            metadata = [(k, v) for k, v in context.invocation_metadata() if k not in _HOP_BY_HOP and not k.startswith(":")]
            metadata += self._backend_auth
            remaining = context.time_remaining()
            call = self._backend.stream_stream(method)(
                requests, metadata=metadata, timeout=remaining if remaining and remaining < 1e8 else None
            )
            context.add_callback(call.cancel)
            try:
                context.send_initial_metadata(self._clean(call.initial_metadata()))
                yield from call
                context.set_trailing_metadata(self._clean(call.trailing_metadata()))
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.CANCELLED and not context.is_active():
                    return
                context.set_trailing_metadata(self._clean(exc.trailing_metadata()))
                details = redact(exc.details() or "", self._backend_token)
                if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                    details = BACKEND_REFUSED + details
                context.abort(exc.code(), details)

        return grpc.stream_stream_rpc_method_handler(forward)


class Gateway(Served):
    """Listen on ``host:port`` and forward every call with a valid token to ``backend``.

    The caller's token is never forwarded; ``backend_token`` (if any) is sent to the
    backend instead, as ``authorization: Bearer <backend_token>``. A refusal says
    which hop refused: the gateway, or the backend behind it.
    """

    def __init__(
        self,
        backend: str,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_workers: int = 128,
        backend_token: str | None = None,
    ) -> None:
        self._token = secrets.token_urlsafe(24) if token is None else token
        self.backend = backend
        self._channel = grpc.insecure_channel(backend, options=SERVER_OPTIONS)
        # Each call holds a worker for its whole life: size the pool for calls in flight.
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="easnb-gateway"),
            handlers=[_Proxy(self._channel, self._token, backend_token or "")],
            options=SERVER_OPTIONS,
            maximum_concurrent_rpcs=max_workers,
        )
        self._listen(host, port, "gateway")

    def stop(self, grace: float | None = None) -> None:
        super().stop(grace)
        self._channel.close()

    def __repr__(self) -> str:
        return f"<Gateway {self.endpoint} -> {self.backend}>"


