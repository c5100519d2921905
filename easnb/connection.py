"""A connection to an EAS or V2 inference service: one channel, the token, deadlines.

>>> conn = connect("localhost:50051", token="...")    # doctest: +SKIP
>>> conn.live(), conn.model_metadata("iris").inputs   # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from . import _proto, arguments, log
from .channel import Keepalive
from .credentials import Headers, Token, clean_token, parse_token
from .endpoint import Endpoint
from .connection_base import BaseConnection, connect_settings
from .connection_features import Features
from .calls import CALLS, DEFAULT, RetryPlan, Unary, is_unknown_model, model_metadata_from, quiet, run_plan  # noqa: F401 - re-exported
from .errors import EasnbError, FrameInput, NotFoundError, scrub
from .rpc_errors import from_rpc_error
from .fork import BoundedChannel, watch
from .scrubbing import scrubbing
from .frames import frame_to_inputs, frames_in, is_frame
from .inference import Inputs, Outputs, decode_response, encode_request
from .results import InferResult, ModelMetadata, ServerMetadata, TensorMetadata
from .settings import Settings, settings_of
from .stream_watchdog import Watchdog

__all__ = ["DEFAULT", "Connection", "Keepalive", "clean_token", "connect"]

if TYPE_CHECKING:
    from .discovery import Discovery
    from .loop import BackgroundLoop
    from .reflection import Reflection
    from .repository import ModelIndex
    from .services import ServiceClient

T = TypeVar("T")
@scrubbing("infer")  # infer scrubs inline: no wrapper on the hot path
class Connection(Features, BaseConnection):
    """One reusable, thread-safe channel to a service, with its token, headers and timeout.

    Use ``easnb.connect(...)``. Idempotent calls (live, ready, metadata) retry
    briefly on UNAVAILABLE, always within the call's one deadline; ``infer``
    retries only when given ``retries=``.
    """

    _owns_channel = False
    _connectivity: log.ConnectivityLog

    def __init__(
        self,
        endpoint: str | Endpoint | Settings,
        token: str | Token | None = None,
        timeout: float | None = 5.0,
        *,
        channel: grpc.Channel | None = None,
        **options: Any,
    ) -> None:
        """``Connection(settings)``, or the arguments of ``connect()``; ``channel=`` a ready channel to use."""
        if not isinstance(endpoint, Settings):
            token, problem = parse_token(token)  # the plain text leaves this frame before anything can fail
            if problem is not None:
                raise problem
        settings = settings_of("Connection", endpoint, token, timeout, options)
        channel = arguments.channel(channel, aio=False)
        self._start(settings)
        self._owns_channel = channel is None
        self.channel = settings.open_channel() if channel is None else channel
        self._connectivity = log.ConnectivityLog(self.channel, settings.endpoint.target)  # INFO: lost, connected again
        self._background: BackgroundLoop | None = None
        self._background_lock = threading.Lock()
        self.stream_watchdog = Watchdog()  # streams' idle limits: one thread for them all, while any is watched
        self._closed = False
        self._reflection: Any = None
        self._metadata = settings.metadata  # read on every infer: kept one lookup away
        self.open_stubs()
        watch(self)  # a child forked from here rebuilds the channel and background loop

    def open_stubs(self) -> None:
        """The V2 stubs on ``self.channel`` (again after a fork: see ``easnb.fork``)."""
        channel = self.channel
        self._stubs = {name: call.stub(channel) for name, call in CALLS.items() if call.request is not None}
        self._path_stubs: dict[str, Any] = {}  # plans' unary calls, by method path
        # bytes in, bytes out: easnb's codec writes and reads the wire format itself.
        self._infer = CALLS["ModelInfer"].stub(channel)

    def call(
        self,
        method: str,
        invoke: Callable[[float | None], T],
        timeout: float | None = DEFAULT,
        retries: int = 0,
    ) -> T:
        """Run ``invoke(seconds)``, translating gRPC errors; UNAVAILABLE is retried ``retries`` times.

        Every attempt shares the call's one deadline, so a call never takes longer than its ``timeout``.
        When a retry runs out of time, the UNAVAILABLE error that caused it is raised."""
        if self._closed:
            self.check_open()
        seconds = self.settings.timeout if timeout is DEFAULT else timeout
        if not retries and not log.debugging():  # the usual case, kept short: it runs on every call
            try:
                return invoke(seconds)
            except grpc.RpcError as exc:
                error = from_rpc_error(exc, method=method, timeout=seconds, **self.error_context)
            log.failed(error, self.error_context["target"])
            raise error  # outside the except block: the grpc.RpcError (its text may hold the token) is not kept
        plan = RetryPlan(method, seconds, retries, self.error_context)
        for attempt in plan.attempts():
            started = time.perf_counter()
            try:
                reply = invoke(plan.left(attempt))
            except grpc.RpcError as exc:
                error = plan.failed(exc, started, attempt)
            else:
                return plan.done(reply, started, attempt)  # type: ignore[no-any-return]
            time.sleep(plan.pause_after(error, attempt))  # raises when there is no retry left
        raise AssertionError("unreachable")

    def unary(self, step: Unary) -> Any:
        """One ``Unary`` step of a plan: any unary method, with this connection's metadata and errors."""
        stub = self._path_stubs.get(step.path)
        if stub is None:
            stub = self._path_stubs[step.path] = self.channel.unary_unary(
                step.path, request_serializer=type(step.request).SerializeToString, response_deserializer=quiet(step.reply.FromString)
            )
        request, metadata = step.request, self.metadata
        return self.call(
            step.path, lambda seconds: stub(request, timeout=seconds, metadata=metadata), step.timeout,
            self.retries if step.idempotent else 0,
        )

    def _unary(
        self, name: str, request: Any, timeout: float | None, retries: int | None = None, headers: Headers | None = None
    ) -> Any:
        stub, metadata = self._stubs[name], self.metadata_for(headers)
        return self.call(
            name,
            lambda seconds: stub(request, timeout=seconds, metadata=metadata),
            timeout,
            self.retries if retries is None else retries,
        )

    # -- the V2 calls -------------------------------------------------------------------

    def live(self, timeout: float | None = DEFAULT, headers: Headers | None = None) -> bool:
        """Whether the server is live."""
        timeout = arguments.server_call(timeout, headers)
        return bool(self._unary("ServerLive", _proto.ServerLiveRequest(), timeout, headers=headers).live)

    def ready(self, timeout: float | None = DEFAULT, headers: Headers | None = None) -> bool:
        """Whether the server is ready for inference."""
        timeout = arguments.server_call(timeout, headers)
        return bool(self._unary("ServerReady", _proto.ServerReadyRequest(), timeout, headers=headers).ready)

    def model_ready(
        self, name: str, version: str = "", timeout: float | None = DEFAULT, headers: Headers | None = None
    ) -> bool:
        """Whether a model (and version) is ready for inference.

        An unknown model is ``False`` on every server (Triton answers False, KServe
        NOT_FOUND, MLServer an error naming the model): use ``model_metadata`` to
        tell "unknown" from "not ready yet".
        """
        name, version, timeout = arguments.model_call(name, version, timeout, headers)
        request = _proto.ModelReadyRequest(name=name, version=version)
        try:
            return bool(self._unary("ModelReady", request, timeout, headers=headers).ready)
        except EasnbError as exc:
            if is_unknown_model(exc):
                return False
            raise

    def server_metadata(self, timeout: float | None = DEFAULT, headers: Headers | None = None) -> ServerMetadata:
        """The server's name, version and extensions."""
        timeout = arguments.server_call(timeout, headers)
        reply = self._unary("ServerMetadata", _proto.ServerMetadataRequest(), timeout, headers=headers)
        found: ServerMetadata = CALLS["ServerMetadata"].read(reply)
        return found

    def model_metadata(
        self, name: str, version: str = "", timeout: float | None = DEFAULT, headers: Headers | None = None
    ) -> ModelMetadata:
        """A model's versions, platform, inputs and outputs."""
        name, version, timeout = arguments.model_call(name, version, timeout, headers)
        request = _proto.ModelMetadataRequest(name=name, version=version)
        meta = model_metadata_from(self._unary("ModelMetadata", request, timeout, headers=headers))
        self._model_cache[(name, version)] = meta
        return meta

    def cached_model_metadata(self, name: str, version: str = "", headers: Headers | None = None) -> ModelMetadata:
        """``model_metadata``, asked of the server once per model and version."""
        name, version, _ = arguments.model_call(name, version, None, headers)
        cached = self._model_cache.get((name, version))
        return cached if cached is not None else self.model_metadata(name, version, headers=headers)

    def models(self, ready: bool = False) -> list[ModelIndex]:
        """The server's models with versions and states, from Triton's or MLServer's repository index.

        Raises ``UnimplementedError`` when the server has no index (KServe's V2 API has none);
        ``known_models()`` falls back to the names used on this connection.
        """
        from .repository import index_plan

        return run_plan(self, index_plan(self.endpoint.target, arguments.flag(ready, "ready")))

    def known_models(self) -> list[str]:
        """Model names to offer: the repository index's, else the ones used on this connection."""
        from .repository import known_plan

        return run_plan(self, known_plan(self.endpoint.target, list(dict.fromkeys(name for name, _ in self._model_cache))))

    def wait_until_ready(self, model: str | None = None, timeout: float = 600, progress: bool = True) -> str:
        """Block until the server (or ``model``) is ready, as while an EAS service deploys or scales.

        Polls ServerReady or ModelReady with backoff (the health service, or any
        answer at all, for a service that is not V2), with a progress line in notebooks.
        Returns what was found ready; raises ``DeadlineError`` with the last state after
        ``timeout`` seconds, and at once for a refused token.
        """
        from .readiness import wait_plan

        return run_plan(self, wait_plan(self.endpoint.target, self.timeout, *arguments.wait_call(model, timeout, progress)))

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
        headers: Headers | None = None,
        raw: bool = True,
        retries: int = 0,
        copy: bool = False,
        bytes_as_str: bool = False,
        columns: Mapping[str, list[str]] | None = None,
    ) -> InferResult:
        """Run ``model`` on ``inputs`` (a dict of name -> array, or a DataFrame).

        Raw contents are sent unless ``raw=False``. Output arrays are read-only views
        of the reply unless ``copy=True``; BYTES come back as bytes unless ``bytes_as_str``.
        A DataFrame's columns are matched by name (see ``easnb.columns``); ``columns`` maps
        each input to the columns that fill it, in order.
        """
        model, inputs, outputs, version, request_id, timeout, retries = arguments.infer_call(model, inputs, outputs, version, parameters, request_id, timeout, headers, raw, retries, copy, bytes_as_str, columns)
        try:
            data = self.encode_infer(model, inputs, outputs, version, parameters, request_id, raw, columns, headers)
            metadata = self._metadata if headers is None else self.settings.metadata_with(headers)
            stub = self._infer
            reply = self.call("ModelInfer", lambda seconds: stub(data, timeout=seconds, metadata=metadata), timeout, retries)
            return decode_response(reply, copy=copy, bytes_as_str=bytes_as_str, plans=self.reply_plans)
        except EasnbError as exc:  # a server's names (in its metadata, in the reply) may quote the token
            scrub(exc, self.settings.token)
            raise

    def encode_infer(
        self,
        model: str,
        inputs: Inputs | Any,
        outputs: Outputs = None,
        version: str = "",
        parameters: Mapping[str, Any] | None = None,
        request_id: str = "",
        raw: bool = True,
        columns: Mapping[str, list[str]] | None = None,
        headers: Headers | None = None,
    ) -> bytes:
        """The serialized request ``infer`` would send (DataFrames matched to the model's inputs, asked with ``headers``)."""
        model, inputs, outputs, version, request_id, _, _ = arguments.infer_call(model, inputs, outputs, version, parameters, request_id, None, None, raw, 0, False, False, columns)
        if type(inputs) is not dict and is_frame(inputs):
            inputs = frame_to_inputs(inputs, self.cached_model_metadata(model, version, headers), None if columns is None else dict(columns),
                                     token=self.settings.token)
        try:
            return encode_request(model, inputs, outputs, version, parameters, request_id, raw, self.request_heads)
        except FrameInput:  # a DataFrame as one input's value: its columns matched to that input's features
            inputs = frames_in(inputs, self.cached_model_metadata(model, version, headers), token=self.settings.token)
        return encode_request(model, inputs, outputs, version, parameters, request_id, raw, self.request_heads)

    @property
    def owns_channel(self) -> bool:
        """Whether this connection opened its channel (else it was handed one with ``channel=``, whose own
        limits apply and which it does not close)."""
        return self._owns_channel

    @property
    def known_reflection(self) -> Reflection | None:
        """The server's reflection if this connection has asked for it (``reflection()``), else ``None``."""
        found: Reflection | None = self._reflection
        return found

    def reflection(self) -> Reflection:
        """The server's reflection (asked once per connection); raises ``UnimplementedError`` without it."""
        self.check_open()  # a closed connection answers nothing, not even what it asked before
        if self._reflection is None:
            from .reflection import reflect

            self._reflection = reflect(self)
            self.error_context["offered"] = self._reflection.services()
        found: Reflection = self._reflection
        return found

    def services(self) -> list[str]:
        """The services the server offers, from its reflection (health included, reflection itself not; as ``easnb list``)."""
        return self.reflection().services()

    def discover(self) -> Discovery:
        """What this endpoint speaks: V2 or not, health, the services reflection lists (see ``Discovery``)."""
        from .discovery import discover_plan

        return run_plan(self, discover_plan(self.endpoint.target, self.has_token))

    def run_batches(self, run: Any, concurrency: int) -> None:
        """``infer_frame``'s batches (an ``easnb.batch`` run) on this connection's background loop."""
        loop = self.background()
        loop.run(run.score(concurrency, loop.stub(CALLS["ModelInfer"].path)))

    # -- lifecycle ----------------------------------------------------------------------

    def before_fork(self) -> None:
        """Before a fork (``easnb.fork`` calls it): an idle background loop lets its grpc.aio channel go."""
        if self._background is not None:
            self._background.release_for_fork()

    def after_fork(self) -> tuple[Any, ...]:
        """In a forked child: a fresh lock, no background loop, a channel of its own; returns what was inherited."""
        self._background_lock = threading.Lock()
        self.stream_watchdog, self.stream_plans = Watchdog(), {}  # the parent's thread is not here; its layouts' locks may be held
        old = (self._background, self.channel, self._reflection)
        self._background = None
        self._reflection = None
        if self._closed:
            return old
        if self._owns_channel:
            options = (*[o for o in self.settings.options if o[0] != "easnb.process"], ("easnb.process", os.getpid()))
            self.settings = self.settings.replace(options=options)
            self.channel = BoundedChannel(self.settings.open_channel)
        elif isinstance(self.channel, BoundedChannel):  # forked again
            self.channel.after_fork()
        else:  # the caller's own channel cannot be opened again: its calls are bounded at least
            given: grpc.Channel = self.channel
            self.channel = BoundedChannel(lambda: given)
        self.open_stubs()
        return old

    def background(self) -> BackgroundLoop:
        """This connection's background event loop with its own grpc.aio channel (made on first use)."""
        with self._background_lock:
            self.check_open()
            if self._background is None:
                from .loop import BackgroundLoop

                # batches go through the sync channel when it is the user's or has interceptors, so they see them
                use_sync = not self._owns_channel or bool(self.settings.sync_interceptors)
                self._background = BackgroundLoop(self.settings, self.channel, use_sync)
            return self._background

    def close(self, replaced_by: str | None = None) -> None:
        """Close the channel (only if this connection opened it). Safe to call twice.

        ``replaced_by`` names what to use instead, for the error a later call raises.
        """
        replaced_by = arguments.name_or_none(replaced_by, "replaced_by")
        if self._mark_closed(replaced_by):
            self._connectivity.close()
            self.stream_watchdog.close()
            if self._owns_channel:
                self.channel.close()
            background, self._background = getattr(self, "_background", None), None
            if background is not None:
                background.close()
            for callback in self._on_close:
                callback()

    _on_close: tuple[Callable[[], Any], ...] = ()

    def on_close(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` when this connection closes (a widget's status follows it that way)."""
        self._on_close = (*self._on_close, callback)

    def __enter__(self) -> Connection:
        self.check_open()  # a closed connection is not entered again
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

def connect(
    endpoint: str | Endpoint | Settings | None = None,
    token: str | Token | None = None,
    timeout: float | None = 5.0,
    **options: Any,
) -> Connection:
    """Connect to a service; ``endpoint`` and ``token`` default to ``EASNB_ENDPOINT`` / ``EASNB_TOKEN``.

    Options (see ``easnb.settings.Settings``): ``headers={...}`` sent with every call
    (``x-request-id``, ``mm-vmodel-id``; not ``authorization``), ``tls``, ``root_certificates``,
    ``certificate_chain`` and ``private_key`` (a client certificate), ``keepalive=Keepalive(...)``,
    ``max_message_bytes``, ``retries``, raw gRPC ``options``, ``interceptors`` (gRPC client
    interceptors) and ``channel`` (a ready channel to use instead of opening one).

    ``connect(settings)`` opens a connection with the settings of another (``conn.settings``).

    >>> conn = connect("http://name.123.cn-hangzhou.pai-eas.aliyuncs.com/", token="...")  # doctest: +SKIP
    """
    if token is not None:  # this frame keeps no plain token for a traceback's locals (%xmode Verbose)
        token, problem = parse_token(token)
        if problem is not None:
            raise problem
    channel = options.pop("channel", None)
    return Connection(connect_settings("Connection", endpoint, token, timeout, options), channel=channel)
