"""conn.generate and the asyncio twins, against the demo's textgen and a TensorRT-LLM-shaped model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping

import numpy as np
import pytest

import easnb
import easnb.aio
from easnb.demo import DemoServer
from easnb.demo.models import Model
from easnb.inference import decode_response
from easnb.results import ModelMetadata, TensorMetadata

from .conftest import TOKEN


def test_generate_yields_pieces_and_totals(conn: easnb.Connection) -> None:
    g = conn.generate("textgen", "the quick  brown fox", max_tokens=32, temperature=0.2, top_p=0.9)
    pieces = list(g)
    assert pieces == [" You", " said:", " the", " quick", " brown", " fox."]
    assert g.text == " You said: the quick brown fox." and str(g) == g.text
    assert g.finish_reason == "stop" and g.tokens == 6 and g.finished
    assert 0 < g.time_to_first_token < 2
    assert len(g.inter_token_latencies) == 5 and all(0 < t < 2 for t in g.inter_token_latencies)
    assert g.tokens_per_second > 0 and "6 tokens" in repr(g)
    assert len(g.stream.arrivals) == 7  # the flags-only final response too: per-response timestamps for load tests


def test_max_tokens_cuts_with_finish_reason_length(conn: easnb.Connection) -> None:
    g = conn.generate("textgen", "one two three four", max_tokens=3).finish()
    assert g.text == " You said: one" and g.finish_reason == "length" and g.tokens == 3


def test_generate_error_mid_stream(conn: easnb.Connection) -> None:
    g = conn.generate("textgen", "now fail", request_id="gen-9")
    with pytest.raises(easnb.StreamError) as caught:
        for _ in g:
            pass
    assert caught.value.request_id == "gen-9" and g.text == " You said:"


def test_a_model_that_does_not_generate_gets_a_list_of_what_it_takes(conn: easnb.Connection) -> None:
    with pytest.raises(easnb.InvalidArgumentError) as caught:
        conn.generate("iris", "hello")
    assert "features (FP32 [-1, 4])" in str(caught.value) and "conn.stream" in caught.value.hint
    with pytest.raises(easnb.InvalidArgumentError, match="prompt must be a str"):
        conn.generate("textgen", b"bytes")  # type: ignore[arg-type]
    with pytest.raises(easnb.InvalidArgumentError, match="JSON"):
        conn.generate("textgen", "x", stop=object())
    for argument, bad in (("max_tokens", "5"), ("max_tokens", -1), ("temperature", "hot"), ("top_p", float("nan"))):
        with pytest.raises(easnb.EasnbError) as caught:
            conn.generate("textgen", "x", **{argument: bad})
        assert caught.value.argument == argument


def trtllm_model(seen: list[dict]) -> Model:
    """TensorRT-LLM's ensemble shape: separate sampling inputs, batch dimension first."""

    def stream(x: Mapping[str, np.ndarray], types: Mapping[str, str], _: object) -> Iterator[dict]:
        seen.append({n: (types[n], a.shape, a.reshape(-1).tolist()) for n, a in x.items()})
        for i in range(int(x["max_tokens"].reshape(-1)[0])):
            yield {"text_output": ("BYTES", np.array([[f" t{i}".encode()]], dtype=object))}

    inputs = [
        TensorMetadata("text_input", "BYTES", (-1, 1)), TensorMetadata("max_tokens", "INT32", (-1, 1)),
        TensorMetadata("stream", "BOOL", (-1, 1)), TensorMetadata("temperature", "FP32", (-1, 1)),
        TensorMetadata("top_k", "INT32", (-1, 1)), TensorMetadata("stop_words", "BYTES", (-1, -1)),
    ]
    meta = ModelMetadata("ensemble", ("1",), "ensemble", tuple(inputs), (TensorMetadata("text_output", "BYTES", (-1, -1)),))
    return Model(meta, lambda x, t: {}, stream=stream, optional=frozenset(i.name for i in inputs[2:]))


def test_tensorrt_llm_convention_sends_separate_inputs() -> None:
    seen: list[dict] = []
    with DemoServer(token="", models={"ensemble": trtllm_model(seen)}) as server, easnb.connect(server.endpoint) as conn:
        g = conn.generate("ensemble", "hi", max_tokens=3, temperature=0.5, top_k=4, stop_words=["a", "b"]).finish()
        assert g.text == " t0 t1 t2" and g.tokens == 3 and g.finish_reason is None
        assert seen[0] == {
            "text_input": ("BYTES", (1, 1), [b"hi"]), "max_tokens": ("INT32", (1, 1), [3]),
            "stream": ("BOOL", (1, 1), [True]), "temperature": ("FP32", (1, 1), [0.5]),
            "top_k": ("INT32", (1, 1), [4]), "stop_words": ("BYTES", (1, 2), [b"a", b"b"]),
        }
        with pytest.raises(easnb.InvalidArgumentError, match="no input for top_p") as caught:
            conn.generate("ensemble", "hi", max_tokens=2, top_p=0.9)
        assert "max_tokens" in caught.value.hint


def test_vllm_sampling_parameters_are_one_json_string(recording_demo) -> None:  # type: ignore[no-untyped-def]
    conn, requests = recording_demo
    conn.generate("textgen", "hi", max_tokens=2, temperature=0.0, stop=["\n"]).finish()
    inputs = requests[-1]
    assert json.loads(inputs["sampling_parameters"]) == {"max_tokens": 2, "temperature": 0.0, "stop": ["\n"]}
    assert inputs["stream"] == True and inputs["exclude_input_in_output"] == True and inputs["text_input"] == b"hi"  # noqa: E712


@pytest.fixture()
def recording_demo() -> Iterator[tuple[easnb.Connection, list[dict]]]:
    from easnb.demo.textgen import generate, textgen

    requests: list[dict] = []

    def recorded(x, types, parameters):  # type: ignore[no-untyped-def]
        requests.append({n: a.reshape(-1)[0] for n, a in x.items()})
        yield from generate(x, types, parameters)

    base = textgen()
    model = Model(base.metadata, base.run, stream=recorded, optional=base.optional)
    with DemoServer(token="", models={"textgen": model}) as server, easnb.connect(server.endpoint) as conn:
        yield conn, requests


def test_content_type_str_decodes_bytes_as_text() -> None:
    from easnb._proto import ModelInferResponse
    from easnb.parameters import set_parameters

    reply = ModelInferResponse(model_name="m")
    tensor = reply.outputs.add(name="text", datatype="BYTES", shape=[2])
    tensor.contents.bytes_contents.extend([b"h\xc3\xa9", b"x"])
    set_parameters(tensor.parameters, {"content_type": "str"})
    other = reply.outputs.add(name="raw", datatype="BYTES", shape=[1])
    other.contents.bytes_contents.append(b"b")
    result = decode_response(reply.SerializeToString())
    assert result["text"].tolist() == ["hé", "x"] and result["raw"].tolist() == [b"b"]
    assert result.output_parameters["text"] == {"content_type": "str"}


# -- asyncio ------------------------------------------------------------------------------

def test_async_stream_and_generate(demo: DemoServer) -> None:
    async def main() -> tuple:
        async with easnb.aio.connect(demo.endpoint, token=TOKEN) as aconn:
            stream = await aconn.stream("textgen", {"text_input": np.array([b"a b"], dtype=object)}, request_id="x")
            texts = [r["text_output"][0] async for r in stream]
            g = aconn.generate("textgen", "c d", max_tokens=8)
            assert "not started" in repr(g)
            pieces = [p async for p in g]
            zero = await (await aconn.stream("textgen", {"text_input": np.array([b"z"], dtype=object),
                                                         "sampling_parameters": np.array([b'{"max_tokens": 0}'], dtype=object)})).collect()
            return texts, stream, pieces, g, zero

    texts, stream, pieces, g, zero = asyncio.run(main())
    # without the stream input the model answers once, that response final (as vLLM's backend does)
    assert texts == [b"a b You said: a b."] and stream.finished and len(stream.arrivals) == 1
    assert pieces == [" You", " said:", " c", " d."] and g.finish_reason == "stop" and g.time_to_first_token > 0
    assert zero == []


def test_async_errors_timeouts_and_cancel(demo: DemoServer) -> None:
    before = demo.service.cancelled
    slow = {"text_input": np.array([b"a b c d e f"], dtype=object), "stream": np.array([True])}

    async def main() -> None:
        async with easnb.aio.connect(demo.endpoint, token=TOKEN) as aconn:
            with pytest.raises(easnb.StreamError) as caught:
                async for _ in aconn.generate("textgen", "fail", request_id="af"):
                    pass
            assert caught.value.request_id == "af" and len(caught.value.received) == 2
            with pytest.raises(easnb.DeadlineError, match="first_response_timeout"):
                await (await aconn.stream("textgen", slow, parameters={"delay_ms": 500}, first_response_timeout=0.1)).collect()
            stream = await aconn.stream("textgen", slow, parameters={"delay_ms": 100})
            async for _ in stream:
                stream.cancel()
            assert stream.cancelled and not stream.finished and len(stream.responses) == 1
            with pytest.raises(TypeError, match="async for"):
                iter(aconn.generate("textgen", "x"))

    asyncio.run(main())
    deadline = asyncio.run(_poll(lambda: demo.service.cancelled >= before + 2))
    assert deadline, "the server did not see both cancellations"


async def _poll(check) -> bool:  # type: ignore[no-untyped-def]
    for _ in range(250):
        if check():
            return True
        await asyncio.sleep(0.02)
    return False


@pytest.mark.parametrize(("setting", "bad"), [("top_k", "abc"), ("top_k", 1.5), ("top_k", 2**40), ("top_k", [1, "x"])])
def test_a_sampling_setting_that_does_not_fit_its_input_is_named(setting: str, bad: object) -> None:
    seen: list[dict] = []
    with DemoServer(token="", models={"ensemble": trtllm_model(seen)}) as server, easnb.connect(server.endpoint) as conn:
        with pytest.raises(easnb.ArgumentError, match="does not fit the model's input top_k") as caught:
            conn.generate("ensemble", "hi", max_tokens=2, **{setting: bad})  # was: ValueError, OverflowError; 1.5 sent as 1
        assert caught.value.argument == setting and "INT32" in str(caught.value)
        assert seen == [] and conn.generate("ensemble", "hi", max_tokens=2, top_k=True).finish().text == " t0 t1"
