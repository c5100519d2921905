"""A hostile server quotes the token it was sent in the names it gives (a model's, an input's, its
features'): the warnings and errors of matching a DataFrame's columns to them never show it, on
every way a frame goes in, sync and ``easnb.aio``."""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest

import easnb
import easnb.aio
from easnb import ColumnOrderWarning
from easnb.demo import DemoServer
from easnb.demo.models import Model
from easnb.results import ModelMetadata, TensorMetadata

SECRET = "hostile-col-T0ken-5b4a3c2d1e"  # the demo's token, which its models' metadata quote back
LONG = "p" * 20 + SECRET + "q" * 60  # a feature name cut short in messages, in the token: no piece of it may stay
NAMELESS = f"x{SECRET}"  # an input name (the model names no features)


def _pieces(text: str) -> list[str]:
    """Each 10-character piece of the token that ``text`` shows (none, if it is kept out)."""
    return [SECRET[i : i + 10] for i in range(len(SECRET) - 9) if SECRET[i : i + 10] in text]


def quoting(name: str, input_name: str, features: list[str] | None) -> Model:
    """A model of one [-1, 2] input whose metadata quotes the token: ``y`` is each row's sum."""

    def run(x: Mapping[str, np.ndarray], _: Any) -> dict[str, tuple[str, np.ndarray]]:
        return {"y": ("FP64", x[input_name].astype(np.float64).sum(axis=1))}

    properties = {"features": json.dumps(features)} if features else {}
    meta = ModelMetadata(f"{name} {SECRET}", ("1",), "test", (TensorMetadata(input_name, "FP32", (-1, 2)),),
                         (TensorMetadata("y", "FP64", (-1,)),), properties)
    return Model(meta, run)


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    models = {"nameless": quoting("nameless", NAMELESS, None), "featured": quoting("featured", "x", [LONG, SECRET])}
    with DemoServer(token=SECRET, models=models) as served:
        yield served


NAMED = pd.DataFrame({"b": [2.0], "a": [1.0]})  # column names; the model "nameless" names nothing: position
UNNAMED = pd.DataFrame(np.ones((1, 2)))  # no column names; the model "featured" names its features: position
#: (model, frame, its input's name) for each kind of positional warning
CASES = [("nameless", NAMED, NAMELESS), ("featured", UNNAMED, "x")]

SYNC: dict[str, Callable[[easnb.Connection, str, pd.DataFrame, str], Any]] = {
    "infer": lambda conn, model, frame, _: conn.infer(model, frame),
    "infer by input": lambda conn, model, frame, name: conn.infer(model, {name: frame}),
    "infer_frame": lambda conn, model, frame, _: conn.infer_frame(model, frame, progress=False),
    "stream": lambda conn, model, frame, _: conn.stream(model, frame).collect(),
}


async def _stream(aconn: easnb.aio.AsyncConnection, model: str, frame: pd.DataFrame) -> list[Any]:
    return [result async for result in await aconn.stream(model, frame)]


AIO: dict[str, Callable[[easnb.aio.AsyncConnection, str, pd.DataFrame, str], Any]] = {
    "infer": lambda aconn, model, frame, _: aconn.infer(model, frame),
    "infer by input": lambda aconn, model, frame, name: aconn.infer(model, {name: frame}),
    "infer_frame": lambda aconn, model, frame, _: aconn.infer_frame(model, frame, progress=False),
    "stream": lambda aconn, model, frame, _: _stream(aconn, model, frame),
}


def _said(run: Callable[[], Any]) -> str:
    """The one ``ColumnOrderWarning`` ``run()`` gives, as text."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
    said = [str(w.message) for w in caught if w.category is ColumnOrderWarning]
    assert len(said) == 1, [str(w.message) for w in caught]
    return said[0]


def _check(text: str, model: str) -> None:
    assert "by position" in text and "***" in text, text  # it still says what went where, the token masked
    assert not _pieces(text), (model, _pieces(text), text)


@pytest.mark.parametrize("way", list(SYNC))
@pytest.mark.parametrize(("model", "frame", "name"), CASES, ids=[c[0] for c in CASES])
def test_column_order_warnings_never_show_the_token(server: DemoServer, way: str, model: str, frame: pd.DataFrame, name: str) -> None:
    with easnb.connect(server.endpoint, token=SECRET) as conn:  # a new connection: each says it once
        _check(_said(lambda: SYNC[way](conn, model, frame, name)), model)


@pytest.mark.parametrize("way", list(AIO))
@pytest.mark.parametrize(("model", "frame", "name"), CASES, ids=[c[0] for c in CASES])
def test_column_order_warnings_never_show_the_token_aio(server: DemoServer, way: str, model: str, frame: pd.DataFrame, name: str) -> None:
    async def main() -> None:
        async with easnb.aio.connect(server.endpoint, token=SECRET) as aconn:
            await AIO[way](aconn, model, frame, name)

    _check(_said(lambda: asyncio.run(main())), model)


@pytest.mark.parametrize(("model", "frame", "name"), CASES, ids=[c[0] for c in CASES])
def test_the_infer_form_warns_and_refuses_without_the_token(server: DemoServer, model: str, frame: pd.DataFrame, name: str) -> None:
    pytest.importorskip("ipywidgets")
    from easnb.inspectors import InferInspector

    with easnb.connect(server.endpoint, token=SECRET) as conn:
        form = InferInspector(conn, model)
        form.namespace = {"df": frame}
        form.frame_field.value = "df"
        _check(_said(lambda: form.run(wait=True)), model)
        assert form.result is not None and form.result["y"].tolist() == [3.0 if model == "nameless" else 2.0]
        form.namespace = {"df": pd.DataFrame({"a": [1.0], "b": [2.0], "c": [3.0]})}  # refused: the names are in the error
        form.run(wait=True)
        assert "TensorError" in form.output.value and not _pieces(form.output.value), form.output.value


def test_a_refusal_naming_the_features_never_shows_a_piece_of_the_token(server: DemoServer) -> None:
    frame = pd.DataFrame({"a": [1.0], "b": [2.0]})  # named columns, not the model's features: refused by name
    with easnb.connect(server.endpoint, token=SECRET) as conn:
        for run in (lambda: conn.infer("featured", frame), lambda: conn.infer_frame("featured", frame, progress=False)):
            with pytest.raises(easnb.TensorError, match="names the features") as info:
                run()
            text = f"{info.value} {info.value.hint}"
            assert "'pppp" in text and not _pieces(text), text  # the long name is shown cut, with no piece of the token

    async def main() -> None:
        async with easnb.aio.connect(server.endpoint, token=SECRET) as aconn:
            await aconn.infer("featured", frame)

    with pytest.raises(easnb.TensorError, match="names the features") as info:
        asyncio.run(main())
    assert not _pieces(f"{info.value} {info.value.hint}")
