"""The demo's ``ModelStreamInfer``, with Triton's semantics.

- Requests on one stream run concurrently; their responses interleave, told apart by ``id``.
- A decoupled model's request ends with a flags-only response (``triton_final_response: true``),
  which is sent only when the request asked with ``triton_enable_empty_final_response: true``
  (PyTriton's behaviour), unless the model marked a response with content final (it yields
  ``(outputs, True)``, as vLLM's backend does without streaming); a model that is not decoupled
  answers once, that response final.
- A failure is a response with ``error_message``, still carrying the request's id and the final
  flag; the stream goes on. With the header ``triton_grpc_error: true`` the first failure ends the
  stream with a gRPC status instead.
- A cancelled stream stops its generators between two tokens (``V2Service.cancelled`` counts them).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import grpc

from .. import _proto, wire
from ..errors import EasnbError
from ..inference import decode_request
from ..parameters import set_parameters, to_python
from ..stream_wire import ENABLE_EMPTY_FINAL, FINAL, GRPC_ERROR_HEADER, encode_stream_response
from ..tensors import Tensor, encode_tensor
from .service import Abort, V2Service

_DONE, _STARTED, _READ_ALL = object(), object(), object()


class _Failure(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, reply: bytes) -> None:
        super().__init__(message)
        self.code, self.message, self.reply = code, message, reply


def _head(request: Any, model_name: str, version: str, final: bool) -> Any:
    reply = _proto.ModelInferResponse(model_name=model_name, model_version=version, id=request.id)
    set_parameters(reply.parameters, {FINAL: final})
    return reply


def responses(service: V2Service, data: bytes, stop: threading.Event) -> Iterator[bytes]:
    """One request's serialized ModelStreamInferResponses; raises ``_Failure`` (its last reply inside)."""
    try:
        request, raws = decode_request(data)
    except EasnbError as exc:
        request, raws = _proto.ModelInferRequest(), []
        raise _Failure(grpc.StatusCode.INVALID_ARGUMENT, exc.message, _error_reply(request, request.model_name, "")) from None
    name, version = request.model_name, request.model_version
    try:
        model = service.model(name, version)
        version = model.metadata.versions[-1]
        if model.stream is None:  # not decoupled: one response, final
            reply = _proto.ModelInferResponse.FromString(service.model_infer(data))
            set_parameters(reply.parameters, {FINAL: True})
            yield encode_stream_response(reply.SerializeToString())
            return
        arrays, _ = service.inputs_of(model, request, raws)
        datatypes = {t.name: t.datatype for t in request.inputs}
        parameters = {k: to_python(v) for k, v in request.parameters.items()}
        for item in model.stream(arrays, datatypes, parameters):
            if stop.is_set():
                with service.lock:
                    service.cancelled += 1
                return
            outputs, final = item if isinstance(item, tuple) else (item, False)
            reply = _head(request, name, version, final)
            buffers = []
            for out_name, (datatype, array) in outputs.items():
                buffer, _ = encode_tensor(reply.outputs.add(), out_name, Tensor(array, datatype), raw=True)
                buffers.append(buffer)
            yield encode_stream_response(wire.join(reply.SerializeToString(), wire.RAW_OUTPUT_FIELD, buffers))
            if final:  # the model marked this response its last: no flags-only one follows
                return
    except Abort as exc:
        raise _Failure(exc.code, exc.message, _error_reply(request, name, version, exc.message)) from None
    except (ValueError, KeyError, RuntimeError) as exc:
        message = f"model {name!r}: {exc}"
        code = grpc.StatusCode.INVALID_ARGUMENT if isinstance(exc, (ValueError, KeyError)) else grpc.StatusCode.INTERNAL
        raise _Failure(code, message, _error_reply(request, name, version, message)) from None
    final = request.parameters.get(ENABLE_EMPTY_FINAL)
    if final is not None and to_python(final) is True:
        yield encode_stream_response(_head(request, name, version, True).SerializeToString())


def _error_reply(request: Any, name: str, version: str, message: str = "") -> bytes:
    return encode_stream_response(_head(request, name, version, True).SerializeToString(), message or "bad request")


def stream_infer(service: V2Service) -> grpc.RpcMethodHandler:
    """The ``ModelStreamInfer`` handler over ``service`` (bytes in, bytes out)."""

    def handle(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        grpc_errors = any(k == GRPC_ERROR_HEADER and v.lower() == "true" for k, v in context.invocation_metadata())
        out: queue.Queue[Any] = queue.Queue()
        stop = threading.Event()
        context.add_callback(stop.set)

        def work(data: bytes) -> None:
            try:
                for reply in responses(service, data, stop):
                    out.put(reply)
            except _Failure as failure:
                out.put(failure)
            finally:
                out.put(_DONE)

        def read() -> None:
            try:
                for data in requests:
                    if stop.is_set():
                        break
                    out.put(_STARTED)  # before the worker's first reply: the count is never behind
                    threading.Thread(target=work, args=(data,), name="easnb-demo-stream", daemon=True).start()
            except Exception:  # the client went away: the workers see ``stop``
                pass
            out.put(_READ_ALL)

        threading.Thread(target=read, name="easnb-demo-stream-reader", daemon=True).start()
        started = finished = 0
        reading = True
        try:
            while reading or finished < started:
                item = out.get()
                if item is _STARTED:
                    started += 1
                elif item is _DONE:
                    finished += 1
                elif item is _READ_ALL:
                    reading = False
                elif isinstance(item, _Failure):
                    if grpc_errors:
                        stop.set()
                        context.abort(item.code, item.message)
                    yield item.reply
                else:
                    yield item
        finally:
            stop.set()

    return grpc.stream_stream_rpc_method_handler(handle)
