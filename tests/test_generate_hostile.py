"""generate against a server whose model half-follows the text generation conventions and quotes the token."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

import easnb
import easnb.aio
from easnb import _proto
from easnb.parameters import set_parameters
from easnb.stream_wire import encode_stream_response

TOKEN = "hostile-generate-token-0123"


def reply(count: tuple[str, Any]) -> bytes:
    r = _proto.ModelInferResponse(model_name="m")
    set_parameters(r.parameters, {"triton_final_response": True})
    r.outputs.add(name="text_output", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"x")
    datatype, value = count
    out = r.outputs.add(name="num_output_tokens", datatype=datatype, shape=[1])
    if datatype == TOKEN:  # the text itself, in a datatype of the server's naming
        r.outputs[0].datatype = TOKEN
    elif datatype == "BYTES":
        out.contents.bytes_contents.append(value)
    else:
        out.contents.fp32_contents.append(value)
    return encode_stream_response(r.SerializeToString())


def llm_server(stream: Any) -> tuple[grpc.Server, str]:
    """A started loopback server of a vLLM-shaped model ``m`` whose ``ModelStreamInfer`` is ``stream``."""
    def metadata(data: bytes, context: grpc.ServicerContext) -> bytes:
        m = _proto.ModelMetadataResponse(name="m", versions=["1"], platform="x")
        for name in ("text_input", "sampling_parameters"):
            m.inputs.add(name=name, datatype="BYTES", shape=[1])
        m.outputs.add(name="text_output", datatype="BYTES", shape=[1])
        return m.SerializeToString()

    handler = grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
        "ModelMetadata": grpc.unary_unary_rpc_method_handler(metadata),
        "ModelStreamInfer": grpc.stream_stream_rpc_method_handler(stream)})
    server = grpc.server(futures.ThreadPoolExecutor(2), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture()
def llm(request: pytest.FixtureRequest) -> Iterator[str]:
    """A vLLM-shaped model whose one reply carries ``num_output_tokens`` as the test's parameter gives it."""
    def stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for _ in requests:
            yield reply(request.param)
            return

    server, endpoint = llm_server(stream)
    yield endpoint
    server.stop(None)


def _no_token(error: BaseException) -> None:
    assert TOKEN not in str(error) + repr(error) + repr(vars(error))


@pytest.mark.parametrize("llm", [("BYTES", TOKEN.encode()), ("BYTES", b"Bearer " + TOKEN.encode()), (TOKEN, b"")],
                         indirect=True)
def test_a_reply_quoting_the_token_is_an_error_without_it(llm: str) -> None:
    with easnb.connect(llm, token=TOKEN) as conn, pytest.raises(easnb.TensorError, match="output") as caught:
        conn.generate("m", "hi", flavour="triton").finish()
    _no_token(caught.value)  # was: the count's text, token and all, in the message

    async def run() -> None:
        async with easnb.aio.connect(llm, token=TOKEN) as aconn:
            with pytest.raises(easnb.TensorError, match="output") as caught:
                await aconn.generate("m", "hi", flavour="triton").finish()
            _no_token(caught.value)

    asyncio.run(run())


def test_a_text_input_setting_does_not_replace_the_prompt_of_a_tensorrt_llm_model() -> None:
    from easnb.demo import DemoServer

    from .test_generate import trtllm_model

    seen: list[dict] = []
    with DemoServer(token="", models={"ensemble": trtllm_model(seen)}) as server, easnb.connect(server.endpoint) as conn:
        with pytest.raises(easnb.ArgumentError, match="prompt"):
            conn.generate("ensemble", "the prompt", max_tokens=2, text_input="another")  # was: sent instead of the prompt
        assert seen == []


def test_latencies_leave_out_a_response_with_no_outputs_in_the_middle() -> None:
    """A decoupled model may send a response with no outputs before its text (a Python backend's empty one)."""
    import time

    from easnb.generate import Generation

    from .test_streaming_hostile import INPUTS, reply as text_reply, serve

    def answer(_: bytes) -> Iterator[bytes]:
        yield encode_stream_response(text_reply(""))  # no outputs, not final
        time.sleep(0.4)
        yield encode_stream_response(text_reply("", b"a"))
        time.sleep(0.2)
        yield encode_stream_response(text_reply("", b"b", final=True))

    server, endpoint = serve(answer)
    try:
        with easnb.connect(endpoint) as conn:
            stream = conn.stream("m", INPUTS, flavour="triton", bytes_as_str=True)
            g = Generation(stream).finish()
    finally:
        server.stop(None)
    assert g.text == "ab" and len(stream.arrivals) == 3
    assert g.time_to_first_token >= 0.35  # was: the empty response's arrival, at once
    [gap] = g.inter_token_latencies  # was: two, the response with no text counted as a token
    assert gap >= 0.15


def test_asyncio_latencies_leave_out_a_response_with_no_outputs_in_the_middle() -> None:
    import time

    from .test_streaming_hostile import reply as text_reply

    def answer(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for _ in requests:
            yield encode_stream_response(text_reply(""))  # no outputs, not final
            time.sleep(0.4)
            yield encode_stream_response(text_reply("", b"a"))
            yield encode_stream_response(text_reply("", b"b", final=True))
            return

    server, endpoint = llm_server(answer)

    async def run() -> Any:
        async with easnb.aio.connect(endpoint) as aconn:
            return await aconn.generate("m", "hi", flavour="triton").finish()

    try:
        g = asyncio.run(run())
    finally:
        server.stop(None)
    assert g.text == "ab" and g.time_to_first_token >= 0.35  # was: the empty response's arrival, at once
    assert len(g.inter_token_latencies) == 1


def test_a_model_with_a_flood_of_inputs_gets_a_short_error() -> None:
    def metadata(data: bytes, context: grpc.ServicerContext) -> bytes:
        m = _proto.ModelMetadataResponse(name="m", versions=["1"], platform="x")
        for i in range(20_000):
            m.inputs.add(name=f"input_{i}_" + "x" * 40, datatype="FP32", shape=[1])
        m.outputs.add(name="y" * 5000, datatype="FP32", shape=[1])
        return m.SerializeToString()

    handler = grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
        "ModelMetadata": grpc.unary_unary_rpc_method_handler(metadata)})
    server = grpc.server(futures.ThreadPoolExecutor(2), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with easnb.connect(f"127.0.0.1:{port}") as conn, pytest.raises(easnb.InvalidArgumentError) as caught:
            conn.generate("m", "hi", flavour="triton")
    finally:
        server.stop(None)
    assert "input_0_" in str(caught.value) and "20000 inputs" in str(caught.value)
    assert len(str(caught.value)) < 3000  # was: every input, 1.3 MB


def test_an_unknown_input_of_a_model_with_a_flood_of_inputs_gets_a_short_error() -> None:
    from easnb.results import ModelMetadata, TensorMetadata

    meta = ModelMetadata("m", ("1",), "x", tuple(TensorMetadata(f"in_{i}_" + "x" * 40, "FP32", (1,)) for i in range(20_000)), ())
    with pytest.raises(easnb.TensorError, match="no input 'nope'") as caught:
        meta.input("nope")  # as easnb stream --inputs looks each name up
    assert "in_0_" in str(caught.value) and "20000" in str(caught.value) and len(str(caught.value)) < 3000  # was: 1 MB
