"""open_stream's reading of replies (easnb.stream_wire.Heads): a reply's id and final flag read off its bytes
are what protobuf reads, however the server writes the reply; a reply it cannot read is a ServerError."""

from __future__ import annotations

import pytest

from easnb import _proto
from easnb.errors import ServerError
from easnb.stream_wire import Heads
from easnb.stream_wire import encode_stream_response, id_and_final


def reply(request_id: str, final: bool | None, raws: tuple[bytes, ...] = (b"\x02\x00\x00\x00hi",)) -> _proto.ModelInferResponse:
    r = _proto.ModelInferResponse(model_name="gen", model_version="1", id=request_id)
    if final is not None:
        r.parameters["triton_final_response"].bool_param = final
    r.parameters["other"].int64_param = 3
    for i, _ in enumerate(raws):
        r.outputs.add(name=f"out{i}", datatype="BYTES", shape=[1])
    r.raw_output_contents.extend(raws)
    return r


def truth(inner: bytes) -> tuple[str, bool]:
    message = _proto.ModelInferResponse.FromString(inner)
    flag = message.parameters.get("triton_final_response")
    return message.id, flag is not None and flag.bool_param


def field(number: int, payload: bytes) -> bytes:
    assert len(payload) < 0x80
    return bytes([number << 3 | 2, len(payload)]) + payload


FINAL_TRUE = field(1, b"triton_final_response") + field(2, b"\x08\x01")
ODD_INNERS = [  # legal protobuf a server may write, each read as protobuf reads it
    reply("a", False).SerializeToString() + field(3, b"late-id"),  # a second id after the tensors: the last wins
    reply("a", False).SerializeToString() + field(4, FINAL_TRUE),  # the final flag after the tensors
    field(4, field(2, b"\x08\x01") + field(1, b"triton_final_response")) + field(3, b"v"),  # value before key
    field(4, field(1, b"triton_final_response") + field(2, b"\x10\x01")) + field(3, b"w"),  # an int64, not a bool
    field(4, b"") + field(3, b"x"),  # an empty map entry
    b"\x18\x05" + field(3, b"y"),  # an unknown varint field
    reply("z" * 200, True).SerializeToString(),  # a long id: a two-byte length
    reply("n", None).SerializeToString(),  # no final flag at all
]


#: Named, not shown: a serialized map's order differs from process to process, and pytest-xdist's
#: workers must collect the same test ids.
ODD_NAMES = ["late id", "late final flag", "value before key", "int64 flag", "empty entry", "unknown field", "long id", "no flag"]


@pytest.mark.parametrize("inner", ODD_INNERS, ids=ODD_NAMES)
def test_an_odd_reply_reads_as_protobuf_reads_it(inner: bytes) -> None:
    heads = Heads()
    warm = reply("a", False).SerializeToString()
    for _ in range(2):  # the plain layout learned first, so the odd one is tried against it
        assert heads.read(encode_stream_response(warm))[:2] == ("a", False)
    assert heads.read(encode_stream_response(inner)) == (*truth(inner), "")
    found = id_and_final(inner)
    assert found is None or found == truth(inner)


def test_tokens_of_interleaved_requests_keep_their_ids_and_flags() -> None:
    heads = Heads()
    for round_ in range(3):
        for request_id in ("a", "b", "c"):
            for raws in ((b"\x01\x00\x00\x00x",), (b"\x03\x00\x00\x00abc", b"\x00\x00\x00\x00")):
                inner = reply(request_id, round_ == 2, raws).SerializeToString()
                assert heads.read(encode_stream_response(inner)) == (request_id, round_ == 2, "")


def test_an_in_stream_error_keeps_its_id_and_a_corrupt_reply_is_a_server_error() -> None:
    heads = Heads()
    inner = reply("e", True, ()).SerializeToString()
    assert heads.read(encode_stream_response(inner, "boom")) == ("e", True, "boom")
    with pytest.raises(ServerError):
        heads.read(encode_stream_response(b"\x1a\x09short"))
    with pytest.raises(ServerError):
        heads.read(b"\x12\x05\x1a\x09short")  # the inner reply's id runs past its end
