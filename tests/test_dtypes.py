"""Every dtype numpy 2 and pandas hand over, sent to the demo: carried exactly, or refused with a hint that fits."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

import easnb

STRING_DTYPE = getattr(getattr(np, "dtypes", None), "StringDType", None)  # numpy 2 only
ARROW = importlib.util.find_spec("pyarrow") is not None
needs_numpy2 = pytest.mark.skipif(STRING_DTYPE is None, reason="numpy 2's StringDType")
needs_arrow = pytest.mark.skipif(not ARROW, reason="Arrow-backed dtypes need pyarrow")


def series(values: list[Any], dtype: str) -> Callable[[], Any]:
    return lambda: pd.Series(values, dtype=dtype)


CARRIED = [  # (what, make, datatype on the wire, values back)
    pytest.param(lambda: np.array(["hello", "wörld"], dtype=STRING_DTYPE()), "BYTES", [b"hello", "wörld".encode()],
                 marks=needs_numpy2, id="numpy2-StringDType"),
    pytest.param(series([1, -2], "Int64"), "INT64", [1, -2], id="Int64"),
    pytest.param(series([1, -2], "Int8"), "INT8", [1, -2], id="Int8"),
    pytest.param(series([1, 2], "UInt16"), "UINT16", [1, 2], id="UInt16"),
    pytest.param(series([1.5, 2.0], "Float32"), "FP32", [1.5, 2.0], id="Float32"),
    pytest.param(series([True, False], "boolean"), "BOOL", [True, False], id="boolean"),
    pytest.param(series(["a", "ü"], "string"), "BYTES", [b"a", "ü".encode()], id="string[python]"),
    pytest.param(series(["a", "b", "a"], "category"), "BYTES", [b"a", b"b", b"a"], id="category-of-str"),
    pytest.param(series([3, 1, 3], "category"), "INT64", [3, 1, 3], id="category-of-int"),
    pytest.param(lambda: pd.Index([4, 5], dtype="Int64"), "INT64", [4, 5], id="Index-Int64"),
    pytest.param(lambda: pd.array([1.0, None], dtype="Float64"), "FP64", [1.0, None], id="Float64-NA-as-NaN"),
    pytest.param(series(["a", "ü"], "string[pyarrow]"), "BYTES", [b"a", "ü".encode()], marks=needs_arrow, id="string[pyarrow]"),
    pytest.param(series(["a"], "large_string[pyarrow]"), "BYTES", [b"a"], marks=needs_arrow, id="large_string[pyarrow]"),
    pytest.param(series([b"\x00b"], "binary[pyarrow]"), "BYTES", [b"\x00b"], marks=needs_arrow, id="binary[pyarrow]"),
    pytest.param(series([7, 8], "int64[pyarrow]"), "INT64", [7, 8], marks=needs_arrow, id="int64[pyarrow]"),
    pytest.param(series([0.5, None], "double[pyarrow]"), "FP64", [0.5, None], marks=needs_arrow, id="double[pyarrow]-NA"),
    pytest.param(series([True], "bool[pyarrow]"), "BOOL", [True], marks=needs_arrow, id="bool[pyarrow]"),
]


def _back(values: np.ndarray) -> list[Any]:
    return [None if isinstance(v, float) and np.isnan(v) else v for v in values.tolist()]


@pytest.mark.parametrize(("make", "datatype", "expected"), CARRIED)
def test_carried_exactly_as_an_input_and_as_a_column(conn: easnb.Connection, make: Callable[[], Any], datatype: str, expected: list[Any]) -> None:
    for raw in (True, False):
        result = conn.infer("echo", {"x": make()}, raw=raw)
        assert result.datatypes["x"] == datatype and _back(result["x"]) == expected
    if not isinstance(make(), np.ndarray):
        column = pd.Series(make()).reset_index(drop=True)  # an Index or an array, as a frame's column
        result = conn.infer("echo", pd.DataFrame({"x": column}))
        assert result.datatypes["x"] == datatype and _back(result["x"]) == expected


@needs_numpy2
def test_numpy2_text_to_the_text_model(conn: easnb.Connection) -> None:
    result = conn.infer("text", {"TEXT": np.array(["hello"], dtype=STRING_DTYPE())})
    assert result["UPPER"].tolist() == [b"HELLO"] and result["LENGTH"].tolist() == [5]


MISSING = [  # a missing value where the tensor's datatype cannot hold it: refused, naming the tensor
    pytest.param(lambda: np.array(["a", None], dtype=STRING_DTYPE(na_object=None)), None, marks=needs_numpy2, id="StringDType-na"),
    pytest.param(series([1, None], "Int64"), None, id="Int64"),
    pytest.param(series([True, None], "boolean"), None, id="boolean"),
    pytest.param(series(["a", None], "string"), None, id="string[python]"),
    pytest.param(series(["a", None], "category"), None, id="category"),
    pytest.param(series([1.5, None], "Float32"), "INT32", id="Float32-as-INT32"),
    pytest.param(lambda: np.array([b"a", None], dtype=object), None, id="object-None"),
    pytest.param(series(["a", None], "string[pyarrow]"), None, marks=needs_arrow, id="string[pyarrow]"),
    pytest.param(series([1, None], "int64[pyarrow]"), None, marks=needs_arrow, id="int64[pyarrow]"),
]


@pytest.mark.parametrize(("make", "datatype"), MISSING)
def test_missing_values_are_refused_naming_the_tensor(conn: easnb.Connection, make: Callable[[], Any], datatype: str | None) -> None:
    with pytest.raises(easnb.TensorError, match="'x' has .*missing value") as info:
        conn.infer("echo", {"x": easnb.Tensor(make(), datatype)})
    assert "fillna" in info.value.hint
    if not isinstance(make(), np.ndarray) and datatype is None:  # echo's columns have no datatype to refuse for
        with pytest.raises(easnb.TensorError, match="Column 'x' has 1 missing") as info:
            conn.infer("echo", pd.DataFrame({"x": pd.Series(make()).reset_index(drop=True)}))


REFUSED = [  # (make, a word the hint must hold)
    pytest.param(lambda: np.array(["2020-01-01"], dtype="datetime64[D]"), "date", id="datetime64"),
    pytest.param(lambda: pd.Series(pd.to_datetime(["2020-01-01"]).tz_localize("UTC")), "date", id="datetime-tz"),
    pytest.param(lambda: np.array([1], dtype="timedelta64[s]"), "duration", id="timedelta64"),
    pytest.param(lambda: np.array([1 + 2j]), "complex", id="complex"),
    pytest.param(lambda: pd.Series(pd.period_range("2020", periods=2, freq="D")), "period", id="period"),
    pytest.param(lambda: pd.Series(pd.interval_range(0, 2)), "interval", id="interval"),
    pytest.param(lambda: np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]), "field", id="structured"),
    pytest.param(lambda: np.array([1, 2.5], dtype=object), "numeric dtype", id="object-of-numbers"),
    pytest.param(lambda: np.array([__import__("decimal").Decimal("1.5")], dtype=object), "numeric dtype", id="object-of-Decimal"),
    pytest.param(lambda: np.array([pd.Timestamp("2020-01-01")], dtype=object), "date", id="object-of-Timestamp"),
    pytest.param(lambda: np.array([__import__("datetime").timedelta(1)], dtype=object), "duration", id="object-of-timedelta"),
    pytest.param(lambda: np.array([1j, 2], dtype=object), "complex", id="object-of-complex"),
    pytest.param(lambda: pd.Series([np.zeros(2), np.zeros(3)]), "np.stack", id="object-of-arrays"),
    pytest.param(series(["2020-01-01"], "timestamp[ns][pyarrow]"), "date", marks=needs_arrow, id="timestamp[pyarrow]"),
]


@pytest.mark.parametrize(("make", "word"), REFUSED)
def test_refused_with_a_hint_that_fits(conn: easnb.Connection, make: Callable[[], Any], word: str) -> None:
    with pytest.raises(easnb.TensorError, match="'x'") as info:
        conn.infer("echo", {"x": make()})
    assert word in info.value.hint, info.value.hint


def test_long_double_and_dates_into_a_float_input_get_their_hint(conn: easnb.Connection) -> None:
    if np.dtype(np.longdouble).itemsize > 8:
        with pytest.raises(easnb.TensorError) as info:
            conn.infer("echo", {"x": np.zeros(2, np.longdouble)})
        assert "FP64" in info.value.hint
    with pytest.raises(easnb.TensorError, match="cannot be sent as FP32") as info:
        conn.infer("echo", {"x": easnb.Tensor(np.array(["2020-01-01"], dtype="datetime64[D]"), "FP32")})
    assert "date" in info.value.hint


def test_nullable_columns_into_a_model_with_named_features(conn: easnb.Connection) -> None:
    from easnb.demo.models import IRIS_FEATURES, load_iris

    x = load_iris()[0][:5]
    plain = conn.infer("iris", pd.DataFrame(x, columns=IRIS_FEATURES))["probabilities"]
    nullable = pd.DataFrame(x, columns=IRIS_FEATURES).astype("Float32")
    np.testing.assert_array_equal(conn.infer("iris", nullable[list(reversed(IRIS_FEATURES))])["probabilities"], plain)
    gaps = nullable.assign(sepal_width=pd.array([3, None, 3, 3, 3], dtype="Int64"))  # into FP32: missing is NaN
    answer = conn.infer("iris", gaps)["probabilities"]
    assert np.isnan(answer[1]).all() and np.isfinite(answer[[0, 2, 3, 4]]).all()
    with pytest.raises(easnb.TensorError, match="Column 'INPUT0_0' has 1 missing values, which INT32"):
        conn.infer("add_sub", pd.DataFrame({f"INPUT{j}_{i}": pd.array([1, None if (i, j) == (0, 0) else 2], dtype="Int64")
                                            for j in range(2) for i in range(16)}))
