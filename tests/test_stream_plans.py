"""Stream reply layouts (easnb.stream_plans): a learned layout never changes what a reply decodes to, or its error."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import easnb
from easnb import _proto
from easnb.parameters import set_parameters
from easnb.stream_plans import Plans, inner_reply, inner_start
from easnb.stream_wire import encode_stream_response
from easnb.streaming import Reader
from easnb.tensors import encode_tensor


def token(text: bytes, final: bool = False, numbers: Any = None, shape: list[int] | None = None, finish: bytes = b"",
          request_id: str = "req-7") -> bytes:
    """A ModelStreamInferResponse as Triton sends for one token (raw contents, the final flag)."""
    r = _proto.ModelInferResponse(model_name="gen", model_version="1", id=request_id)
    set_parameters(r.parameters, {"triton_final_response": final})
    buffers = []
    values = {"text_output": np.array([text] * int(np.prod(shape or [1])), dtype=object).reshape(shape or [1]),
              "finish_reason": np.array([finish], dtype=object)}
    if numbers is not None:
        values["num_output_tokens"] = numbers
    for name, value in values.items():
        buffer, _ = encode_tensor(r.outputs.add(), name, value)
        buffers.append(memoryview(buffer).tobytes())
    r.raw_output_contents.extend(buffers)
    return encode_stream_response(r.SerializeToString())


def outcome(reader: Reader, data: bytes) -> Any:
    """What a reader makes of ``data``: the result's every part, or the error's type."""
    try:
        result, final, error = reader.read(data)
    except Exception as exc:  # noqa: BLE001 - the type is what is compared
        return type(exc)
    if result is None:
        return (None, final, error)
    arrays = {n: (a.dtype.str, a.shape, a.tolist() if a.dtype == object else a.tobytes()) for n, a in result.items()}
    return (arrays, result.model_name, result.model_version, result.id, dict(result.datatypes),
            dict(result.parameters), dict(result.output_parameters), final, error)


def learned(first: bytes, as_str: bool = False) -> Reader:
    reader = Reader("triton", "gen", False, as_str)
    reader.read(first)
    assert reader.plans.known, "the first token reply's layout is learned"
    return reader


@pytest.mark.parametrize("as_str", [False, True])
@pytest.mark.parametrize("numbers", [None, np.array([3], np.int32), np.array([[1.5, 2]], np.float16)])
def test_a_reply_read_from_its_layout_equals_the_full_decode(as_str: bool, numbers: Any) -> None:
    reader = learned(token(b" first", numbers=numbers), as_str)
    for text in (b" next", b"", "\u00e9t\u00e9".encode(), b"\xff not utf-8", b"x" * 300):
        data = token(text, numbers=numbers)
        start = inner_start(data)
        assert start > 0 and reader.plans.decode(data, start, False, as_str) is not None  # the layout was used
        assert inner_reply(data) == data[start:]
        assert outcome(reader, data) == outcome(Reader("triton", "gen", False, as_str), data)
    result, _, _ = reader.read(token(b" tok", numbers=numbers))
    assert result is not None and result["text_output"].tolist() == [" tok" if as_str else b" tok"]
    result.parameters["x"] = 1  # each result has its own dicts
    result.datatypes["y"] = "z"  # type: ignore[index]
    again, _, _ = reader.read(token(b" tok", numbers=numbers))
    assert again is not None and "x" not in again.parameters and "y" not in again.datatypes


def test_the_final_flags_only_reply_still_ends_the_request() -> None:
    reader = learned(token(b" a"))
    empty = _proto.ModelInferResponse(model_name="gen", model_version="1", id="req-7")
    set_parameters(empty.parameters, {"triton_final_response": True})
    final = encode_stream_response(empty.SerializeToString())
    for _ in range(3):  # learned the second time round: the same answer
        assert reader.read(final) == (None, True, "")
    assert reader.read(token(b" last", final=True))[1] is True


@pytest.mark.parametrize("first", [token(b" w1"), token(b"ab", shape=[2]), token(b" w1", numbers=np.array([7], np.int64))])
def test_every_one_byte_change_reads_as_without_a_layout(first: bytes) -> None:
    """Each byte of a reply changed three ways (and the reply cut at every length): a reader that knows the
    layout gives exactly what a fresh one gives, the same result or the same typed error."""
    reader = learned(first)
    assert outcome(reader, first) == outcome(Reader("triton", "gen", False, False), first)
    cases = [first[:cut] for cut in range(len(first))] + [first + b"\x32\x00", first + b"\x00"]
    for i in range(len(first)):
        for value in {first[i] ^ 0x01, first[i] ^ 0x80, 0xFF}:
            cases.append(first[:i] + bytes([value]) + first[i + 1 :])
    changed = 0
    for data in cases:
        fresh = outcome(Reader("triton", "gen", False, False), data)
        assert outcome(reader, data) == fresh, data
        changed += not isinstance(fresh, tuple)
    assert changed > len(first)  # many of the changes are errors, and they stay errors


def test_a_layout_is_learned_only_from_plain_replies() -> None:
    r = _proto.ModelInferResponse(model_name="gen")
    r.outputs.add(name="text_output", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"typed")
    reader = Reader("triton", "gen", False, False)
    reader.read(encode_stream_response(r.SerializeToString()))
    reader.read(encode_stream_response(r.SerializeToString(), "an error"))
    assert reader.plans.known == []
    plans = Plans()
    for _ in range(100):  # a server whose replies never repeat a layout costs a bounded number of tries
        plans.learn(b"\x0a\x01m", reader.read(encode_stream_response(r.SerializeToString()))[0])  # type: ignore[arg-type]
    assert plans.misses <= 16


@pytest.mark.parametrize("copy", [False, True])
def test_a_token_s_arrays_are_made_when_first_asked_for_and_behave_as_a_dict(copy: bool) -> None:
    """A learned layout checks the bytes on arrival but makes the arrays only when one is asked for:
    a mapping like any result's, the same arrays each time, pickled and copied as the plain dict."""
    import copy as copying
    import pickle

    reader = Reader("triton", "gen", copy, False)
    reader.read(token(b" first", numbers=np.array([[1.5, 2]], np.float16)))
    result, _, _ = reader.read(token(b" tok", numbers=np.array([[2.5, 3]], np.float16)))
    assert result is not None
    outputs = result.outputs
    assert type(outputs).__name__ == "StreamOutputs" and not outputs.made  # type: ignore[attr-defined]
    assert list(outputs) == ["text_output", "finish_reason", "num_output_tokens"] and len(outputs) == 3 and list(outputs.keys()) == list(outputs)
    assert "text_output" in outputs and "nope" not in outputs and outputs.get("nope") is None
    assert not outputs.made  # type: ignore[attr-defined]  # asking what is there made nothing
    assert outputs.text("text_output") == " tok" and outputs.text("num_output_tokens") is None  # type: ignore[attr-defined]
    numbers = result["num_output_tokens"]
    assert numbers.tolist() == [[2.5, 3]] and numbers.flags.writeable == copy and result["num_output_tokens"] is numbers
    assert result["text_output"].tolist() == [b" tok"] and outputs.get("finish_reason").tolist() == [b""]
    with pytest.raises(KeyError, match="Available outputs are 'text_output'"):
        result["nope"]
    assert repr(outputs) == repr(dict(outputs))
    for again in (pickle.loads(pickle.dumps(result)).outputs, copying.deepcopy(outputs), copying.copy(outputs)):
        assert type(again) is dict and list(again) == list(outputs)
        assert again["num_output_tokens"].tolist() == [[2.5, 3]] and again["text_output"].tolist() == [b" tok"]
    full, _, _ = Reader("triton", "gen", copy, False).read(token(b" tok", numbers=np.array([[2.5, 3]], np.float16)))
    assert full is not None and type(full.outputs) is dict
    assert result.to_frame().equals(full.to_frame()) and repr(result) == repr(full)


@pytest.mark.parametrize("numbers", [None, np.array([2], np.int32)])
def test_generate_reads_the_same_text_from_a_layout_as_from_arrays(numbers: Any) -> None:
    """conn.generate reads a learned layout's tokens straight from the bytes: the same pieces, finish reason and
    count as from the fully decoded results, through a change of layout (a two-element text) and back."""
    from easnb.generate import Generation

    replies = [token(b" a", numbers=numbers), token(b" b", numbers=numbers), token(b"", numbers=numbers),
               token(b" c", numbers=numbers, shape=[2]), token("\u00e9".encode(), numbers=numbers),
               token(b"\xff.", numbers=numbers, finish=b"stop"), token(b"", numbers=numbers)]

    def generation(results: list[Any]) -> Generation:
        g = Generation(iter(results))
        assert list(g) == [" a", " b", "", " c c", "\u00e9", "\ufffd.", ""]
        return g

    reader = learned(token(b" first", numbers=numbers), True)
    fast = [reader.read(data)[0] for data in replies]
    assert [type(r.outputs).__name__ for r in fast][:3] == ["StreamOutputs"] * 3  # read from the learned layout
    slow = [Reader("triton", "gen", False, True).read(data)[0] for data in replies]  # nothing learned: arrays made
    assert {type(r.outputs) for r in slow} == {dict}
    for g in (generation(fast), generation(slow)):
        assert g.text == " a b c c\u00e9\ufffd." and g.finish_reason == "stop"
        assert g.tokens == (14 if numbers is not None else 5)


@pytest.mark.parametrize("first_id", ["req-7", "", "x" * 200])
def test_a_layout_reads_every_request_s_id_from_the_reply(first_id: str) -> None:
    """The id is each request's own (open_stream gives every request one): a layout learned from one request's
    reply reads another's with that reply's id, whatever its length; an id protobuf refuses stays an error."""
    reader = learned(token(b" first", request_id=first_id))
    for request_id in ("req-7", "", "easnb-12", "\u00e9" * 100, "y" * 300):
        data = token(b" tok", request_id=request_id)
        assert reader.plans.decode(data, inner_start(data), False, False) is not None  # the layout was used
        assert outcome(reader, data) == outcome(Reader("triton", "gen", False, False), data)
        assert reader.read(data)[0].id == request_id  # type: ignore[union-attr]
    bad = token(b" tok", request_id="ab").replace(b"\x1a\x02ab", b"\x1a\x02\xff\xfe")
    assert reader.plans.decode(bad, inner_start(bad), False, False) is None
    assert outcome(reader, bad) == outcome(Reader("triton", "gen", False, False), bad) == easnb.ServerError


def test_a_connection_s_streams_share_their_layouts_per_model() -> None:
    """A stream learns its replies' layouts into its connection's ``stream_plans``; the next stream of that model
    reads even its first reply from one, another model's does not; a fifth layout pushes out the oldest."""
    shared: dict[str, Any] = {}
    first = Reader("triton", "gen", False, False, shared)
    first.read(token(b" a", request_id="one"))
    assert [len(p.outputs) for p in shared["gen"]] == [2]
    second = Reader("triton", "gen", False, False, shared)
    data = token(b" b", request_id="two")
    assert second.plans.known == list(shared["gen"]) and second.plans.decode(data, inner_start(data), False, False) is not None
    assert outcome(second, data) == outcome(Reader("triton", "gen", False, False), data) and second.plans.misses == 0
    assert Reader("triton", "other", False, False, shared).plans.known == []
    for shape in ([2], [3], [4], [5]):  # four more layouts: the reader keeps (and shares) the latest four
        second.read(token(b"t", shape=shape))
    assert len(second.plans.known) == len(shared["gen"]) == 4 and [p.outputs[0][3] for p in shared["gen"]] == [(2,), (3,), (4,), (5,)]
    assert outcome(second, token(b"t", shape=[5])) == outcome(Reader("triton", "gen", False, False), token(b"t", shape=[5]))


def _pieces(text: bytes = b" a") -> tuple[bytes, bytes, bytes, bytes]:
    """A token reply's fields, serialized apart: the name and version, the parameters, the outputs, the raw contents."""
    params = _proto.ModelInferResponse()
    set_parameters(params.parameters, {"triton_final_response": False})
    outs = _proto.ModelInferResponse()
    buffer, _ = encode_tensor(outs.outputs.add(), "text_output", np.array([text], dtype=object))
    raws = _proto.ModelInferResponse(raw_output_contents=[memoryview(buffer).tobytes()])
    head = _proto.ModelInferResponse(model_name="gen", model_version="1")
    return head.SerializeToString(), params.SerializeToString(), outs.SerializeToString(), raws.SerializeToString()


def _id_field(value: bytes) -> bytes:
    from easnb import wire

    return b"\x1a" + wire.varint(len(value)) + value


@pytest.mark.parametrize("first_at", range(4))
def test_an_id_field_anywhere_reads_as_protobuf_reads_it(first_at: int) -> None:
    """A hostile server writes the id's field out of order, twice, or empty (``1a 00``) after the parameters
    (protobuf keeps the last one): a learned layout still gives each reply the id a full decode gives."""
    name, params, outs, raws = _pieces()
    places = [
        lambda i: name + i + params + outs + raws,  # in order
        lambda i: name + params + i + outs + raws,  # after the parameters
        lambda i: name + i + params + _id_field(b"") + outs + raws,  # twice, the last one empty
        lambda i: name + params + outs + raws + i,  # last of all
    ]
    first = encode_stream_response(places[first_at](_id_field(b"")))
    for place in places:
        for request_id in (b"", b"abc", "\u00e9".encode(), b"x" * 20000, b"\xff"):
            data = encode_stream_response(place(_id_field(request_id)))
            reader = Reader("triton", "gen", False, False)
            reader.read(first)
            assert outcome(reader, data) == outcome(Reader("triton", "gen", False, False), data), (place, request_id[:5])


def test_a_server_whose_every_reply_differs_costs_a_stream_few_layouts() -> None:
    """Replies whose parameters change every time (a step counter) never fit a layout: a stream learns at most
    ``PLANS`` of them (each a full decode more), as before the connection kept them, and reads on as without."""
    from easnb.stream_plans import PLANS

    def step(i: int) -> bytes:
        r = _proto.ModelInferResponse(model_name="gen", model_version="1", id="req-7")
        set_parameters(r.parameters, {"triton_final_response": False, "step": i})
        buffer, _ = encode_tensor(r.outputs.add(), "text_output", np.array([b" tok"], dtype=object))
        r.raw_output_contents.append(memoryview(buffer).tobytes())
        return encode_stream_response(r.SerializeToString())

    shared: dict[str, Any] = {}
    for _ in range(2):  # the second stream starts with the first's layouts, none of which fits
        reader = Reader("triton", "gen", False, False, shared)
        for i in range(40):
            assert outcome(reader, step(i)) == outcome(Reader("triton", "gen", False, False), step(i))
        assert reader.plans.misses == PLANS and len(shared["gen"]) == PLANS
