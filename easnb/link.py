"""What a feature module may use of a connection: the small interface below batch, compare,
reflection, services, statistics and the load tests, so they depend on it and not on
``Connection`` (which imports them for its delegating methods).

``Connection`` and ``AsyncConnection`` satisfy these protocols (mypy checks it where the
connection hands itself to a feature). The members are public and documented here:

- ``settings``: the frozen ``Settings`` every channel is built from;
- ``channel``: the connection's one gRPC channel (sync ``grpc.Channel`` or ``grpc.aio.Channel``);
- ``error_context``: the keyword arguments ``rpc_errors.from_rpc_error`` takes to explain a failure here
  (target, TLS, VPC, token to redact, message limit, proxy);
- ``metadata`` / ``metadata_for(headers)``: the call metadata (token and headers; its repr masks the token);
- ``deadline(timeout)``: a call's timeout in seconds (the connection's for ``DEFAULT``);
- ``call(method, invoke, timeout, retries)``: run ``invoke(seconds)`` with the connection's error
  mapping, logging and retries within one deadline;
- ``request_heads`` / ``reply_plans``: the codec's caches of request heads and reply layouts;
- ``background()``: the sync connection's background event loop (``infer_frame``, load tests);
- ``stream_flavour``: the server's streaming flavour once ``easnb.streaming`` has asked (None before);
- ``AsyncConnection.ensure_open()``: refuse when closed, else open the channel in the running loop;
- ``Connection.before_fork()`` / ``Connection.after_fork()``: what ``easnb.fork`` calls before a fork
  and in a forked child.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from .credentials import CallMetadata, Headers
from .endpoint import Endpoint
from .settings import Settings

T = TypeVar("T")


class BaseLink(Protocol):
    """What both connections offer a feature: settings, channel, metadata, deadlines, errors."""

    @property
    def settings(self) -> Settings: ...

    @property
    def channel(self) -> Any: ...

    @property
    def error_context(self) -> dict[str, Any]: ...

    @property
    def request_heads(self) -> dict[Any, bytes]: ...

    @property
    def reply_plans(self) -> dict[int, Any]: ...

    @property
    def stream_plans(self) -> dict[str, tuple[Any, ...]]: ...

    @property
    def endpoint(self) -> Endpoint: ...

    @property
    def timeout(self) -> float | None: ...

    @property
    def retries(self) -> int: ...

    @property
    def metadata(self) -> CallMetadata: ...

    def metadata_for(self, headers: Headers | None = None) -> CallMetadata: ...

    def deadline(self, timeout: float | None = ...) -> float | None: ...

    def check_open(self) -> None: ...

    @property
    def closed(self) -> bool: ...

    @property
    def service(self) -> Callable[..., Any]: ...


class Link(BaseLink, Protocol):
    """A sync connection as the features see it (``easnb.Connection`` is one)."""

    def call(self, method: str, invoke: Callable[[float | None], T], timeout: float | None = ..., retries: int = 0) -> T: ...

    def background(self) -> Any: ...

    @property
    def infer(self) -> Callable[..., Any]: ...

    @property
    def cached_model_metadata(self) -> Callable[..., Any]: ...

    @property
    def encode_infer(self) -> Callable[..., Any]: ...

    @property
    def infer_frame(self) -> Callable[..., Any]: ...

    @property
    def server_metadata(self) -> Callable[..., Any]: ...

    @property
    def reflection(self) -> Callable[..., Any]: ...

    @property
    def generate(self) -> Callable[..., Any]: ...

    @property
    def load_test(self) -> Callable[..., Any]: ...


class AsyncLink(BaseLink, Protocol):
    """An asyncio connection as the features see it (``easnb.aio.AsyncConnection`` is one)."""

    @property
    def call_stub(self) -> Callable[..., Any]: ...

    @property
    def open_stub(self) -> Callable[..., Any]: ...
