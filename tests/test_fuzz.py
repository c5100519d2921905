"""Random and mutated ModelInferResponse bytes: only EasnbError comes out, never a crash or a hang.

The normal suite runs a few hundred cases per strategy; `pytest --slow tests/test_fuzz.py` runs 10,000.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from easnb import EasnbError, wire
from easnb._proto import ModelInferResponse
from easnb.inference import decode_response
from easnb.tensors import DATATYPES


def fuzz_settings(slow: bool):  # type: ignore[no-untyped-def]
    return settings(
        max_examples=10_000 if slow else 300,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )


datatypes = st.one_of(st.sampled_from(list(DATATYPES)), st.text(max_size=6))
shapes = st.lists(st.integers(-3, 2**62), max_size=4) | st.lists(st.integers(0, 6), max_size=3)


@st.composite
def replies(draw) -> bytes:  # type: ignore[no-untyped-def]
    """Plausible replies: right or wrong sizes, raw or typed or both, then mutated."""
    reply = ModelInferResponse(model_name=draw(st.text(max_size=5)), id=draw(st.text(max_size=5)))
    raw = draw(st.booleans())
    for i in range(draw(st.integers(0, 3))):
        out = reply.outputs.add(name=f"o{i}", datatype=draw(datatypes), shape=draw(shapes))
        if raw:
            reply.raw_output_contents.append(draw(st.binary(max_size=64)))
        if draw(st.booleans()):
            field = draw(st.sampled_from([f.name for f in out.contents.DESCRIPTOR.fields]))
            values = {"bool_contents": st.booleans(), "bytes_contents": st.binary(max_size=8),
                      "fp32_contents": st.floats(width=32), "fp64_contents": st.floats()}.get(
                field, st.integers(0, 2**31 - 1))
            getattr(out.contents, field).extend(draw(st.lists(values, max_size=6)))
    data = bytearray(reply.SerializeToString())
    for _ in range(draw(st.integers(0, 4))):  # mutations: flip, cut, insert
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at:]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


def only_easnb_errors(data: bytes) -> None:
    try:
        result = decode_response(data)
        for array in result.values():
            assert isinstance(array, np.ndarray)
    except EasnbError:
        pass


@pytest.fixture(params=["fast path", "protobuf path"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "SMALL", 0 if request.param == "fast path" else 1 << 40)


def test_random_bytes(path: None, request: pytest.FixtureRequest) -> None:
    @fuzz_settings(request.config.getoption("--slow"))
    @given(st.binary(max_size=512))
    def run(data: bytes) -> None:
        only_easnb_errors(data)

    run()


def test_mutated_replies(path: None, request: pytest.FixtureRequest) -> None:
    @fuzz_settings(request.config.getoption("--slow"))
    @given(replies())
    def run(data: bytes) -> None:
        only_easnb_errors(data)

    run()
