"""DataFrame columns matched to a model's inputs by name: reordered, refused, warned, and the edge frames."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import easnb
import easnb.aio
from easnb.batch import BatchError
from easnb import ColumnOrderWarning
from easnb.demo import DemoServer
from easnb.demo.models import IRIS_FEATURES, IRIS_SPECIES, Model, all_models, load_iris
from easnb.results import ModelMetadata, TensorMetadata

FEATURES = tuple(f"f{i}" for i in range(6))
WEIGHTS = np.array([1.0, 10.0, 100.0, 1000.0, 10_000.0, 100_000.0])  # each column leaves its own digit


def weighted(name: str, features: tuple[str, ...] | None, width: int = 6) -> Model:
    """``y = x @ WEIGHTS``, so any column out of place changes the answer; negative values fail."""

    def run(x: Mapping[str, np.ndarray], _: Any) -> dict[str, tuple[str, np.ndarray]]:
        values = x["x"].astype(np.float64)
        if (values < 0).any():
            raise ValueError("negative values are refused")
        return {"y": ("FP64", values @ WEIGHTS[:width]), "top": ("INT64", values.argmax(axis=1))}

    properties = {"features": ",".join(features)} if features else {}
    inputs = (TensorMetadata("x", "FP32", (-1, width)),)
    outputs = (TensorMetadata("y", "FP64", (-1,)), TensorMetadata("top", "INT64", (-1,)))
    return Model(ModelMetadata(name, ("1",), "test", inputs, outputs, properties), run)


def column_model() -> Model:
    """One input of shape [-1, 1] named ``age``: doubles it."""

    def run(x: Mapping[str, np.ndarray], _: Any) -> dict[str, tuple[str, np.ndarray]]:
        return {"twice": ("FP32", x["age"] * 2)}

    meta = ModelMetadata("column", ("1",), "test", (TensorMetadata("age", "FP32", (-1, 1)),),
                         (TensorMetadata("twice", "FP32", (-1, 1)),), {})
    return Model(meta, run)


def two_inputs() -> Model:
    """Inputs ``a`` and ``b`` (FP32 [-1, 2]), each naming its own columns: ``a @ [1, 10] - b @ [100, 1000]``."""

    def run(x: Mapping[str, np.ndarray], _: Any) -> dict[str, tuple[str, np.ndarray]]:
        return {"y": ("FP64", x["a"] @ np.array([1.0, 10.0]) - x["b"] @ np.array([100.0, 1000.0]))}

    inputs = (TensorMetadata("a", "FP32", (-1, 2)), TensorMetadata("b", "FP32", (-1, 2)))
    properties = {"a.features": "p,q", "b.features": '["r, with a comma", "s"]'}
    return Model(ModelMetadata("two", ("1",), "test", inputs, (TensorMetadata("y", "FP64", (-1,)),), properties), run)


HOSTILE = {  # feature names a server may send that cannot be columns: the model then names nothing
    "deep": "[" * 100_000 + "]" * 100_000, "huge": ",".join(f"c{i}" for i in range(300_000)), "repeated": "a,a,b",
    "three for two": "a,b,c", "not text": '[1, 2]', "empty name": "a,", "json object": '{"a": 1}',
}


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    hostile = {f"hostile {k}": weighted(f"hostile {k}", None, 2) for k in HOSTILE}
    for key, model in hostile.items():
        model.metadata.properties["features"] = HOSTILE[key.removeprefix("hostile ")]  # type: ignore[index]
    models = {**all_models(), "named": weighted("named", FEATURES), "plain": weighted("plain", None, 3),
              "column": column_model(), "two": two_inputs(), **hostile}
    with DemoServer(token="", models=models) as served:
        yield served


@pytest.fixture()
def conn(server: DemoServer) -> Iterator[easnb.Connection]:
    with easnb.connect(server.endpoint) as connection:
        yield connection


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    return pd.DataFrame(load_iris()[0], columns=IRIS_FEATURES)


REORDERED = ["petal_width", "sepal_length", "petal_length", "sepal_width"]


def test_the_reordered_iris_frame_gives_the_labels_of_the_ordered_one(conn: easnb.Connection, iris: pd.DataFrame) -> None:
    right = conn.infer("iris", iris).to_frame()
    assert (right["label"] == np.array(IRIS_SPECIES)[load_iris()[1]]).mean() > 0.9
    for answer in (
        conn.infer("iris", iris[REORDERED]).to_frame(),
        conn.infer_frame("iris", iris[REORDERED], batch_size=40, progress=False),
    ):
        assert answer["label"].tolist() == right["label"].tolist()
        np.testing.assert_array_equal(answer.filter(like="prob").to_numpy(), right.filter(like="prob").to_numpy())


def test_the_reordered_iris_frame_through_easnb_aio(server: DemoServer, iris: pd.DataFrame) -> None:
    async def main() -> tuple[Any, ...]:
        async with easnb.aio.connect(server.endpoint) as aconn:
            return (
                (await aconn.infer("iris", iris)).to_frame(), (await aconn.infer("iris", iris[REORDERED])).to_frame(),
                await aconn.infer_frame("iris", iris[REORDERED], batch_size=40, progress=False),
                await aconn.infer_frame("iris", iris.iloc[:0], progress=False, errors="keep"),
            )

    right, reordered, scored, empty = asyncio.run(main())
    assert reordered["label"].tolist() == right["label"].tolist() == scored["label"].tolist()
    assert list(empty.columns) == [*right.columns, "error"] and len(empty) == 0


def test_a_frame_given_as_one_inputs_value_is_matched_by_name_too(conn: easnb.Connection, server: DemoServer, iris: pd.DataFrame) -> None:
    right = conn.infer("iris", iris)["label"].tolist()
    assert conn.infer("iris", {"features": iris[REORDERED]})["label"].tolist() == right
    with pytest.raises(easnb.TensorError, match="names the features"):
        conn.infer("iris", {"features": iris.rename(columns={"petal_width": "pw"})})
    frame = pd.DataFrame({"b": [2.0], "a": [1.0]})
    assert conn.infer("echo", {"x": frame})["x"].tolist() == [[2.0, 1.0]]  # the model declares nothing: position

    async def main() -> list[Any]:
        async with easnb.aio.connect(server.endpoint) as aconn:
            return (await aconn.infer("iris", {"features": iris[REORDERED]}))["label"].tolist()

    assert asyncio.run(main()) == right
    from easnb.inference import encode_request

    with pytest.raises(easnb.TensorError, match="is a DataFrame") as info:  # no metadata at hand: says what to pass
        encode_request("iris", {"features": iris})
    assert "to_numpy()" in info.value.hint


def test_columns_that_are_not_the_named_features_are_refused_with_both_lists(conn: easnb.Connection, iris: pd.DataFrame) -> None:
    for frame in (iris.rename(columns={"petal_width": "pw"}), iris[list(IRIS_FEATURES[:3])], iris.assign(species="x")):
        with pytest.raises(easnb.TensorError) as info:
            conn.infer("iris", frame)
        text = str(info.value)
        assert all(repr(name) in text for name in IRIS_FEATURES)  # the model's names
        assert all(repr(name) in text for name in frame.columns)  # and the frame's
        assert "missing ;" not in text and "missing  " not in text
        with pytest.raises(easnb.TensorError, match="names the features"):
            conn.infer_frame("iris", frame, progress=False)


def test_position_is_used_and_said_once_where_the_model_names_nothing(conn: easnb.Connection) -> None:
    frame = pd.DataFrame({"c": [3.0], "a": [1.0], "b": [2.0]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        answers = [conn.infer("plain", frame)["y"].tolist() for _ in range(3)]  # said once, as Python's warnings are
    assert answers == [[3.0 + 10.0 + 200.0]] * 3  # by position: c, a, b
    (warning,) = caught
    assert warning.category is ColumnOrderWarning and warning.filename == __file__
    assert "'c' -> x[:, 0], 'a' -> x[:, 1], 'b' -> x[:, 2]" in str(warning.message) and "columns=" in str(warning.message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert conn.infer("plain", frame, columns={"x": ["a", "b", "c"]})["y"].tolist() == [1.0 + 20.0 + 300.0]
        assert conn.infer_frame("plain", frame, columns={"x": ["c", "a", "b"]}, progress=False)["y"].tolist() == [213.0]
        conn.infer("plain", pd.DataFrame(np.ones((2, 3))))  # neither side names anything: nothing to say
    with pytest.warns(ColumnOrderWarning, match="not names, but model 'iris' names its features"):
        conn.infer("iris", pd.DataFrame(load_iris()[0][:2]))


def test_each_input_of_a_model_with_several_names_its_own_columns(conn: easnb.Connection) -> None:
    frame = pd.DataFrame({"s": [4.0], "q": [2.0], "r, with a comma": [3.0], "p": [1.0]})
    assert conn.infer("two", frame)["y"].tolist() == [1.0 + 20.0 - 300.0 - 4000.0]
    with pytest.raises(easnb.TensorError, match="names the features of input 'b' as 'r, with a comma', 's'"):
        conn.infer("two", frame.rename(columns={"s": "t"}))


def test_feature_names_a_server_cannot_mean_are_not_used(conn: easnb.Connection) -> None:
    frame = pd.DataFrame({"b": [2.0], "a": [1.0]})
    for key in HOSTILE:
        with pytest.warns(ColumnOrderWarning, match="names no features"):
            assert conn.infer(f"hostile {key}", frame)["y"].tolist() == [2.0 + 10.0]


def test_easnb_aio_says_it_once_too(server: DemoServer) -> None:
    frame = pd.DataFrame({"c": [3.0], "a": [1.0], "b": [2.0]})

    async def main() -> list[Any]:
        async with easnb.aio.connect(server.endpoint) as aconn:
            return [(await aconn.infer("plain", frame))["y"].tolist() for _ in range(3)]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # even so: the connection says it once
        assert asyncio.run(main()) == [[213.0]] * 3
    assert [w.category for w in caught] == [ColumnOrderWarning]


def test_a_single_column_named_after_a_one_wide_input(conn: easnb.Connection) -> None:
    frame = pd.DataFrame({"age": [1.5, 20.0, 3.0]})
    assert conn.infer("column", frame)["twice"].tolist() == [[3.0], [40.0], [6.0]]
    assert conn.infer_frame("column", frame, batch_size=2, progress=False)["twice_0"].tolist() == [3.0, 40.0, 6.0]


def test_one_output_named_by_a_string(conn: easnb.Connection, server: DemoServer, iris: pd.DataFrame) -> None:
    assert list(conn.infer("iris", iris.head(3), outputs="label")) == ["label"]
    assert list(conn.infer_frame("iris", iris.head(3), outputs="label", progress=False).columns) == ["label"]

    async def main() -> list[str]:
        async with easnb.aio.connect(server.endpoint) as aconn:
            return list(await aconn.infer("iris", iris.head(3), outputs="label"))

    assert asyncio.run(main()) == ["label"]


def test_a_frame_of_no_rows_gives_the_output_columns(conn: easnb.Connection, iris: pd.DataFrame) -> None:
    none = iris.iloc[:0]
    scored = conn.infer_frame("iris", none, progress=False)
    full = conn.infer_frame("iris", iris.head(2), progress=False)
    assert list(scored.columns) == list(full.columns) and len(scored) == 0
    assert scored.dtypes.to_dict() == full.dtypes.to_dict()
    kept = conn.infer_frame("iris", none, progress=False, errors="keep", outputs=["label"])
    assert list(kept.columns) == ["label", "error"] and len(kept) == 0
    with pytest.raises(easnb.TensorError, match="names the features"):  # even with no rows, the columns are checked
        conn.infer_frame("iris", none.rename(columns=str.upper), progress=False)


def test_a_frame_of_no_rows_from_metadata_a_server_made_up() -> None:
    from easnb.frames import MAX_COLUMNS, empty_frame

    outputs = (TensorMetadata("wide", "FP32", (-1, 2**40)), TensorMetadata("odd", "FP8", (-1,)),
               TensorMetadata("cube", "BF16", (-1, 2, 2)), TensorMetadata("free", "INT8", (-1, -1)))
    frame = empty_frame(ModelMetadata("m", (), "", (), outputs))
    assert list(frame.columns) == ["wide", "odd", "cube_0", "cube_1", "cube_2", "cube_3", "free"]
    assert str(frame["cube_0"].dtype) == "float32" and frame["odd"].dtype == object and frame["free"].dtype == np.int8
    many = tuple(TensorMetadata(f"o{i}", "FP32", (-1, 1000)) for i in range(10))
    assert len(empty_frame(ModelMetadata("m", (), "", (), many)).columns) <= MAX_COLUMNS + 10
    assert list(empty_frame(ModelMetadata("m", (), "", (), outputs), "cube").columns) == [f"cube_{i}" for i in range(4)]


def test_errors_keep_on_a_repeated_index(conn: easnb.Connection) -> None:
    values = np.tile(np.arange(6.0), (10, 1))
    values[4, 0] = -1.0  # the model refuses the batch holding row 4
    frame = pd.DataFrame(values, columns=list(FEATURES), index=["a", "b"] * 5)
    kept = conn.infer_frame("named", frame, batch_size=3, progress=False, errors="keep")
    assert list(kept.index) == ["a", "b"] * 5
    assert kept["error"].notna().tolist() == [False] * 3 + [True] * 3 + [False] * 4
    assert "negative values" in kept["error"].iloc[3]
    expected = values @ WEIGHTS
    np.testing.assert_array_equal(kept["y"].to_numpy()[[0, 1, 2, 6, 7, 8, 9]], expected[[0, 1, 2, 6, 7, 8, 9]])
    assert kept["y"].iloc[3:6].isna().all()
    with pytest.raises(BatchError) as info:
        conn.infer_frame("named", frame, batch_size=3, progress=False)
    assert list(info.value.partial.index) == ["a", "b", "a", "a", "b", "a", "b"]
    failed = conn.infer_frame("named", -frame, batch_size=3, progress=False, errors="keep")  # every batch fails
    assert list(failed.columns) == ["y", "top", "error"] and list(failed.index) == ["a", "b"] * 5
    assert failed["error"].notna().all() and failed["y"].isna().all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    order=st.permutations(FEATURES),
    width=st.integers(0, len(FEATURES)),
    extra=st.lists(st.sampled_from(["g", "f6", "F0", "x_9"]), max_size=2, unique=True),
    rows=st.integers(0, 5),
)
def test_any_column_order_and_width_against_named_features(
    conn: easnb.Connection, order: tuple[str, ...], width: int, extra: list[str], rows: int
) -> None:
    rng = np.random.default_rng(rows)
    data = {name: rng.integers(0, 10, rows).astype(np.float32) for name in FEATURES}
    columns = [*order[:width], *extra]
    frame = pd.DataFrame({c: data.get(c, np.zeros(rows, np.float32)) for c in columns}, columns=columns)
    if width == len(FEATURES) and not extra:
        expected = np.column_stack([data[n] for n in FEATURES]).astype(np.float64) @ WEIGHTS if rows else np.zeros(0)
        np.testing.assert_array_equal(conn.infer("named", frame)["y"] if rows else expected, expected)
        np.testing.assert_array_equal(conn.infer_frame("named", frame, progress=False)["y"].to_numpy(), expected)
    else:
        with pytest.raises(easnb.TensorError) as info:
            conn.infer_frame("named", frame, progress=False)
        text = str(info.value)
        assert all(repr(n) in text for n in FEATURES[:12]) and all(repr(c) in text for c in columns)
