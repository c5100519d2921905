"""The same calls as coroutines, on grpc.aio: ``await conn.infer(...)`` in a notebook cell.

Jupyter already runs an event loop, so use ``await`` in a cell (never ``asyncio.run``).

>>> conn = easnb.aio.connect(endpoint, token=token)      # doctest: +SKIP
>>> result = await conn.infer("iris", {"features": x})   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from . import _proto
from ._proto import V2_SERVICE, method_path
from .connection import DEFAULT, Keepalive, channel_options, clean_token, model_metadata_from, read_certificates
from .endpoint import Endpoint, parse_endpoint
from .frames import frame_to_inputs, is_frame
from .errors import EasnbError, EndpointError, UnavailableError, from_rpc_error
from .inference import Inputs, Outputs, decode_response, encode_request
from .results import InferResult, ModelMetadata, ServerMetadata

_SMALL_CALLS = {
    "ServerLive": (_proto.ServerLiveRequest, _proto.ServerLiveResponse),
    "ServerReady": (_proto.ServerReadyRequest, _proto.ServerReadyResponse),
    "ModelReady": (_proto.ModelReadyRequest, _proto.ModelReadyResponse),
    "ServerMetadata": (_proto.ServerMetadataRequest, _proto.ServerMetadataResponse),
    "ModelMetadata": (_proto.ModelMetadataRequest, _proto.ModelMetadataResponse),
}


class AsyncConnection:
    """One grpc.aio channel with the token and timeout; the V2 calls as coroutines."""

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
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.endpoint = endpoint if isinstance(endpoint, Endpoint) else parse_endpoint(endpoint, tls=tls)
        self._token = clean_token(token)
        self._metadata = (("authorization", f"Bearer {self._token}"),) if self._token else ()
        self.timeout = timeout
        self.retries = retries
        self._settings = channel_options(keepalive, max_message_bytes, options)
        self._certificates = read_certificates(root_certificates) if self.endpoint.tls else None
        self.channel: grpc.aio.Channel | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def _open(self) -> None:
        """Open the channel in the running loop: grpc.aio channels belong to one loop."""
        loop = asyncio.get_running_loop()
        if self.channel is not None:
            if loop is not self._loop:
                raise EasnbError(
                    "This async connection was opened in another event loop.",
                    hint="Make one connection per event loop: call easnb.aio.connect(...) inside it.",
                )
            return
        if self.endpoint.tls:
            credentials = grpc.ssl_channel_credentials(self._certificates)
            self.channel = grpc.aio.secure_channel(self.endpoint.target, credentials, self._settings)
        else:
            self.channel = grpc.aio.insecure_channel(self.endpoint.target, self._settings)
        self._loop = loop
        self._stubs = {
            name: self.channel.unary_unary(
                method_path(V2_SERVICE, name), request_serializer=req.SerializeToString, response_deserializer=resp.FromString
            )
            for name, (req, resp) in _SMALL_CALLS.items()
        }
        self._infer = self.channel.unary_unary(method_path(V2_SERVICE, "ModelInfer"))

    async def _call(self, method: str, request: Any, timeout: float | None, retries: int) -> Any:
        if self._closed:
            raise EasnbError("This connection is closed.", hint="Open a new one with easnb.aio.connect(...).")
        self._open()
        stub = self._infer if method == "ModelInfer" else self._stubs[method]
        seconds = self.timeout if timeout is DEFAULT else timeout
        for attempt in range(retries + 1):
            try:
                return await stub(request, timeout=seconds, metadata=self._metadata)
            except grpc.RpcError as exc:
                error = from_rpc_error(
                    exc, target=self.endpoint.target, method=method, token=self._token, timeout=seconds, is_vpc=self.endpoint.is_vpc
                )
            if not isinstance(error, UnavailableError) or attempt == retries:
                raise error
            await asyncio.sleep(min(0.1 * 2**attempt, 1.0))
        raise AssertionError("unreachable")

    async def _small(self, name: str, request: Any, timeout: float | None) -> Any:
        return await self._call(name, request, timeout, self.retries)

    async def live(self, timeout: float | None = DEFAULT) -> bool:
        return (await self._small("ServerLive", _proto.ServerLiveRequest(), timeout)).live

    async def ready(self, timeout: float | None = DEFAULT) -> bool:
        return (await self._small("ServerReady", _proto.ServerReadyRequest(), timeout)).ready

    async def model_ready(self, name: str, version: str = "", timeout: float | None = DEFAULT) -> bool:
        return (await self._small("ModelReady", _proto.ModelReadyRequest(name=name, version=version), timeout)).ready

    async def server_metadata(self, timeout: float | None = DEFAULT) -> ServerMetadata:
        reply = await self._small("ServerMetadata", _proto.ServerMetadataRequest(), timeout)
        return ServerMetadata(reply.name, reply.version, tuple(reply.extensions))

    async def model_metadata(self, name: str, version: str = "", timeout: float | None = DEFAULT) -> ModelMetadata:
        reply = await self._small("ModelMetadata", _proto.ModelMetadataRequest(name=name, version=version), timeout)
        return model_metadata_from(reply)

    async def infer(
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
        """As ``Connection.infer``; DataFrames are matched to the model's inputs."""
        if is_frame(inputs):
            inputs = frame_to_inputs(inputs, await self.model_metadata(model, version))
        data = encode_request(model, inputs, outputs, version, parameters, request_id, raw)
        reply = await self._call("ModelInfer", data, timeout, retries)
        return decode_response(reply, copy=copy, bytes_as_str=bytes_as_str)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.channel is not None:
                await self.channel.close()

    async def __aenter__(self) -> AsyncConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        token = "token set" if self._token else "no token"
        return f"<AsyncConnection {self.endpoint.target} {'TLS' if self.endpoint.tls else 'plaintext'}, {token}, timeout {self.timeout}s>"


def connect(endpoint: str | Endpoint | None = None, token: str | None = None, timeout: float | None = 5.0, **options: Any) -> AsyncConnection:
    """As ``easnb.connect``, for ``await``: endpoint and token default to ``EASNB_ENDPOINT`` / ``EASNB_TOKEN``."""
    endpoint = endpoint or os.environ.get("EASNB_ENDPOINT")
    if not endpoint:
        raise EndpointError("No endpoint was given and EASNB_ENDPOINT is not set.")
    return AsyncConnection(endpoint, os.environ.get("EASNB_TOKEN") if token is None else token, timeout, **options)
