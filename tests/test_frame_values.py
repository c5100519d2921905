"""DataFrame columns of dtype object, as pd.read_csv or .astype(object) or row-wise building hands
them over: numbers in them are sent as the numbers they are (they were refused with a generic hint),
missing values follow the column's target (NaN for a float input, refused for an integer one), and
text is refused naming the value and how to parse it; sync, infer_frame and aio."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

import easnb
import easnb.aio
from easnb.demo import DemoServer
from easnb.demo.models import IRIS_FEATURES, load_iris


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    x, _ = load_iris()
    return pd.DataFrame(x, columns=IRIS_FEATURES).head(6)


def add_sub_frame(values: list[object]) -> pd.DataFrame:
    return pd.DataFrame({f"INPUT{j}_{i}": pd.Series(values, dtype=object) for j in range(2) for i in range(16)})


def test_object_columns_of_numbers_are_sent_as_numbers(conn: easnb.Connection, iris: pd.DataFrame) -> None:
    expected = conn.infer("iris", iris)["probabilities"]
    np.testing.assert_array_equal(conn.infer("iris", iris.astype(object))["probabilities"], expected)
    framed = conn.infer_frame("iris", iris.astype(object), progress=False)
    np.testing.assert_array_equal(framed.filter(like="probabilities").to_numpy(np.float32), expected)
    assert conn.infer("add_sub", add_sub_frame([1, 2.0])).to_frame()["OUTPUT0_0"].tolist() == [2, 4]


def test_missing_values_in_object_columns_follow_the_input(conn: easnb.Connection, iris: pd.DataFrame) -> None:
    holed = iris.astype(object)
    holed.iloc[2, 0] = None
    got = conn.infer("iris", holed)["probabilities"]
    assert np.isnan(got[2]).all() and not np.isnan(np.delete(got, 2, axis=0)).any()  # as a float frame with NaN
    with pytest.raises(easnb.TensorError, match=r"'INPUT0' \(sent as INT32\) has a missing value \(None\)") as caught:
        conn.infer("add_sub", add_sub_frame([1, None]))
    assert "fillna" in caught.value.hint
    with pytest.raises(easnb.TensorError, match="fractional"):
        conn.infer("add_sub", add_sub_frame([1, 2.5]))


def test_text_in_a_numeric_input_is_named_with_the_fix(conn: easnb.Connection, iris: pd.DataFrame) -> None:
    with pytest.raises(easnb.TensorError, match=r"\(sent as FP32\) holds text \('5.1' at flat index 0\)") as caught:
        conn.infer("iris", iris.astype(str))  # as pd.read_csv(..., dtype=str) gives
    assert "pd.to_numeric" in caught.value.hint
    with pytest.raises(easnb.TensorError, match="holds text"):
        conn.infer("iris", iris.astype(object).assign(sepal_length=["NA", 1, 2, 3, 4, 5]))


def test_aio_sends_the_same(demo: DemoServer, iris: pd.DataFrame) -> None:
    async def run() -> tuple[np.ndarray, np.ndarray, Exception]:
        async with easnb.aio.connect(demo.endpoint, token=demo.token) as conn:
            plain = (await conn.infer("iris", iris))["probabilities"]
            boxed = (await conn.infer("iris", iris.astype(object)))["probabilities"]
            try:
                await conn.infer("iris", iris.astype(str))
            except easnb.TensorError as exc:
                return plain, boxed, exc
        raise AssertionError("text was sent")

    plain, boxed, error = asyncio.run(run())
    np.testing.assert_array_equal(plain, boxed)
    assert "holds text" in str(error)


def test_an_input_given_twice_is_named(conn: easnb.Connection, iris: pd.DataFrame) -> None:
    for twice in (iris.assign(features_0=1.0), iris.assign(**{f"features_{i}": iris.iloc[:, i] for i in range(4)})):
        with pytest.raises(easnb.TensorError, match=r"gives input 'features' twice: as columns 'features_0'") as caught:
            conn.infer("iris", twice)  # was "takes rows of shape [4] but the DataFrame gives [1]"
        assert "df[['sepal_length', 'sepal_width', 'petal_length', 'petal_width']]" in caught.value.hint


@pytest.mark.parametrize("rename", [lambda n: f" {n} ", str.title, lambda n: n.replace("_", " ").upper(), lambda n: n.replace("_", "-")])
def test_names_that_differ_only_in_case_or_spaces_get_the_rename(conn: easnb.Connection, iris: pd.DataFrame, rename) -> None:  # type: ignore[no-untyped-def]
    loose = iris.rename(columns=rename)[[rename(n) for n in reversed(IRIS_FEATURES)]]
    with pytest.raises(easnb.TensorError, match="names the features of input 'features'") as caught:
        conn.infer("iris", loose)
    fix = {rename(n): n for n in reversed(IRIS_FEATURES)}
    assert f"df.rename(columns={fix!r})" in caught.value.hint
    fixed = loose.rename(columns=fix)
    np.testing.assert_array_equal(conn.infer("iris", fixed)["probabilities"], conn.infer("iris", iris)["probabilities"])


def test_a_series_is_refused_with_both_readings(conn: easnb.Connection, iris: pd.DataFrame) -> None:
    with pytest.raises(easnb.ArgumentError, match=r"not a Series \(one row, or one column\?\)") as caught:
        conn.infer("iris", iris.iloc[0])
    assert "s.to_frame().T" in caught.value.hint and "s.to_frame()" in caught.value.hint
    row = iris.iloc[0]
    assert conn.infer("iris", row.to_frame().T)["label"].tolist() == conn.infer("iris", iris.iloc[[0]])["label"].tolist()
    text = pd.Series(["ab"], name="TEXT")
    assert conn.infer("text", text.to_frame()).to_frame()["UPPER"].tolist() == ["AB"]
