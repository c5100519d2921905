"""Text a user hands streams and generate that protobuf or JSON cannot carry: a clear error, nothing sent."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

import easnb
import easnb.aio
from easnb.demo import DemoServer

from .conftest import TOKEN

HI = {"text_input": np.array([b"hi"], dtype=object)}


@pytest.mark.parametrize(("call", "says"), [
    (lambda c: c.generate("textgen", "a\ud800b").finish(), "text_input"),  # a prompt from JSON's "\ud800" or a non-UTF-8 argv
    (lambda c: c.stream("textgen", {"text_input": np.array(["a\ud800"], dtype=object)}).collect(), "text_input"),
    (lambda c: c.stream("textgen", {"text_input": np.array(["a\ud800"])}).collect(), "text_input"),
    (lambda c: c.stream("textgen", HI, request_id="id\ud800").collect(), "request_id"),
    (lambda c: c.stream("textgen\udcff", HI).collect(), "model"),
    (lambda c: c.infer("text", {"TEXT": np.array(["a\ud800"], dtype=object)}), "TEXT"),
])
def test_a_lone_surrogate_is_a_clear_error(conn: easnb.Connection, call: Any, says: str) -> None:
    with pytest.raises(easnb.InvalidArgumentError, match="surrogate") as caught:
        call(conn)
    assert says in str(caught.value) and caught.value.__cause__ is None


def test_a_lone_surrogate_on_a_shared_stream_and_in_asyncio(demo: DemoServer, conn: easnb.Connection) -> None:
    with conn.open_stream("textgen") as shared, pytest.raises(easnb.InvalidArgumentError, match="surrogate"):
        shared.submit({"text_input": np.array(["\udcff"], dtype=object)})

    async def run() -> None:
        async with easnb.aio.connect(demo.endpoint, token=TOKEN) as aconn:
            with pytest.raises(easnb.InvalidArgumentError, match="surrogate"):
                await aconn.stream("textgen", {"text_input": np.array(["\udcff"], dtype=object)})

    asyncio.run(run())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), [1.0, float("-inf")]])
def test_sampling_settings_that_json_cannot_hold_are_refused(conn: easnb.Connection, bad: Any) -> None:
    with pytest.raises(easnb.InvalidArgumentError, match="JSON") as caught:
        conn.generate("textgen", "hi", seed=bad)  # json.dumps wrote NaN/Infinity, which no JSON parser need take
    assert "seed" in str(caught.value)


def test_sampling_settings_go_as_strict_json(conn: easnb.Connection) -> None:
    from easnb.generate import build_inputs

    inputs = build_inputs(conn.model_metadata("textgen"), "hi", {"stop": ["\n", "\ud83d\ude00"], "top_k": 3})
    text = inputs["sampling_parameters"].data.reshape(-1)[0].decode()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {"stop": ["\n", "\U0001f600"], "top_k": 3}


def test_a_text_input_setting_does_not_replace_the_prompt(conn: easnb.Connection) -> None:
    with pytest.raises(easnb.ArgumentError, match="prompt") as caught:
        conn.generate("textgen", "the prompt", text_input="another")  # was: sent inside sampling_parameters
    assert caught.value.argument == "text_input"


def test_a_generation_of_no_tokens_has_no_time_to_first_token(conn: easnb.Connection) -> None:
    g = conn.generate("textgen", "hi", max_tokens=0).finish()  # the demo's flags-only final response, nothing else
    assert g.tokens == 0 and g.text == "" and len(g.stream.arrivals) == 1
    assert g.time_to_first_token is None and "first token" not in repr(g)  # was: the final response's arrival
    assert g.inter_token_latencies == [] and g.tokens_per_second is None


def test_time_to_first_token_counts_from_the_first_response_that_holds_text(demo: DemoServer) -> None:
    from easnb.generate import Generation

    with easnb.connect(demo.endpoint, token=TOKEN) as conn:
        stream = conn.stream("textgen", {"text_input": np.array([b"a b c"], dtype=object), "stream": np.array([True])},
                             bytes_as_str=True)
        g = Generation(stream).finish()
    assert g.pieces[0] == " You" and g.time_to_first_token == stream.arrivals[0] - stream.sent_at
    assert len(g.inter_token_latencies) == len(g.pieces) - 1


def test_flavour_mlserver_given_for_a_triton_server_is_not_blamed_on_its_metadata(conn: easnb.Connection) -> None:
    assert "mlserver" not in conn.server_metadata().name.lower()
    with pytest.raises(easnb.ServerError, match="not MLServer's") as caught:
        conn.stream("textgen", HI, flavour="mlserver").collect()
    assert "flavour='triton'" in caught.value.hint and "metadata says MLServer" not in caught.value.hint


def test_an_async_generation_may_be_awaited_as_a_stream_is(demo: DemoServer) -> None:
    async def run() -> tuple[str, str, int]:
        async with easnb.aio.connect(demo.endpoint, token=TOKEN) as aconn:
            g = await aconn.generate("textgen", "a b")  # was: TypeError, can't be used in 'await' expression
            assert g.stream is not None  # sent: the request is on its way
            pieces = [piece async for piece in g]
            again = await (await aconn.generate("textgen", "c")).finish()
            return "".join(pieces), again.text, len(again.stream.responses)

    assert asyncio.run(run()) == (" You said: a b.", " You said: c.", 3)


def test_the_surrogate_error_is_short_however_long_the_run(conn: easnb.Connection) -> None:
    with pytest.raises(easnb.InvalidArgumentError, match="surrogate") as caught:
        conn.stream("textgen", {"text_input": np.array(["\ud800" * 100_000], dtype=object)}).collect()
    assert len(str(caught.value)) < 500  # was: every surrogate of the run, 600 kB


def test_numpy_sampling_settings_go_as_json_numbers(conn: easnb.Connection) -> None:
    from easnb.generate import build_inputs

    settings = {"top_k": np.int64(40), "seed": np.uint32(1), "ignore_eos": np.bool_(True), "stop": np.array(["x", "y"]),
                "top_p": np.float32(0.5)}  # was: "Object of type int64 is not JSON serializable", as TensorRT-LLM's took them
    inputs = build_inputs(conn.model_metadata("textgen"), "hi", settings)
    sent = json.loads(inputs["sampling_parameters"].data.reshape(-1)[0].decode())
    assert sent == {"top_k": 40, "seed": 1, "ignore_eos": True, "stop": ["x", "y"], "top_p": 0.5}
    assert conn.generate("textgen", "a b", top_k=np.int64(40)).finish().text == " You said: a b."
    with pytest.raises(easnb.InvalidArgumentError, match="JSON"):
        conn.generate("textgen", "hi", seed=np.float64("nan"))
