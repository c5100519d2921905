import numpy as np
import pandas as pd
import pytest

import easnb
from easnb.demo.models import IRIS_FEATURES, IRIS_SPECIES, load_iris
from easnb.results import InferResult

pytestmark = pytest.mark.core


@pytest.fixture(scope="module")
def iris_frame() -> tuple[pd.DataFrame, np.ndarray]:
    x, y = load_iris()
    return pd.DataFrame(x, columns=IRIS_FEATURES), y


def test_dataframe_in_and_out(conn: easnb.Connection, iris_frame) -> None:  # type: ignore[no-untyped-def]
    frame, y = iris_frame
    result = conn.infer("iris", frame)
    table = result.to_frame()
    assert list(table.columns) == ["probabilities_0", "probabilities_1", "probabilities_2", "label"]
    assert len(table) == 150 and pd.api.types.is_string_dtype(table["label"])
    assert (table["label"] == np.array(IRIS_SPECIES)[y]).mean() > 0.9
    np.testing.assert_allclose(table.filter(like="probabilities").sum(axis=1), 1.0, rtol=1e-5)


def test_grouped_and_named_columns(conn: easnb.Connection, iris_frame) -> None:  # type: ignore[no-untyped-def]
    frame, _ = iris_frame
    grouped = pd.DataFrame({f"features_{i}": frame.iloc[:5, i] for i in range(4)})
    a = conn.infer("iris", grouped)["probabilities"]
    b = conn.infer("iris", frame.head(5))["probabilities"]
    np.testing.assert_array_equal(a, b)
    arrays = pd.DataFrame({"features": list(frame.head(5).to_numpy())})
    np.testing.assert_array_equal(conn.infer("iris", arrays)["probabilities"], b)
    text = conn.infer("text", pd.DataFrame({"TEXT": ["ab", "ü"]})).to_frame()
    assert text.to_dict("list") == {"UPPER": ["AB", "Ü"], "LENGTH": [2, 1]}


def test_columns_reported_by_name(conn: easnb.Connection, iris_frame) -> None:  # type: ignore[no-untyped-def]
    frame, _ = iris_frame
    with pytest.raises(easnb.TensorError, match="'extra' matches no input"):
        conn.infer("iris", pd.DataFrame({f"features_{i}": [1.0] for i in range(4)} | {"extra": [1]}))
    with pytest.raises(easnb.TensorError, match="No column for input 'INPUT0', 'INPUT1'"):
        conn.infer("add_sub", frame)
    with pytest.raises(easnb.TensorError, match="fractional"):
        conn.infer("add_sub", pd.DataFrame({f"INPUT{j}_{i}": [0.5] for j in range(2) for i in range(16)}))
    with pytest.raises(easnb.TensorError, match=r"rows of shape \[4\]"):
        conn.infer("iris", frame.iloc[:, :3].rename(columns=lambda c: f"features_{list(frame.columns).index(c)}"))


def test_int_columns_convert_to_int32(conn: easnb.Connection) -> None:
    frame = pd.DataFrame({f"INPUT{j}_{i}": [i, 2 * i] for j in range(2) for i in range(16)})
    out = conn.infer("add_sub", frame).to_frame()
    assert out["OUTPUT0_3"].tolist() == [6, 12]
    with pytest.raises(easnb.TensorError, match="do not fit INT32"):
        conn.infer("add_sub", frame.assign(INPUT0_0=[2**40, 0]))


def _result(**outputs: np.ndarray) -> InferResult:
    return InferResult("m", "1", "", outputs, {n: "X" for n in outputs})


def test_to_frame_shapes() -> None:
    r = _result(a=np.arange(3), b=np.arange(6).reshape(3, 2), c=np.arange(12).reshape(3, 2, 2))
    assert list(r.to_frame().columns) == ["a", "b_0", "b_1", "c_0", "c_1", "c_2", "c_3"]
    assert r.to_frame(arrays=True)["b"][1].tolist() == [2, 3]
    bad = _result(a=np.arange(3), b=np.arange(2))
    with pytest.raises(easnb.TensorError, match="long=True"):
        bad.to_frame()
    long = bad.to_frame(long=True)
    assert list(long.columns) == ["output", "index", "value"] and len(long) == 5
    assert "<table" in bad._repr_html_()


def test_html_is_escaped_and_truncated() -> None:
    r = _result(label=np.array([b"<script>x</script>"] * 100, dtype=object))
    html = r._repr_html_()
    assert "<script>" not in html and "showing 20 of 100 rows" in html


def test_a_shared_output_becomes_the_same_frame_without_a_copy() -> None:
    from easnb.frames import result_to_frame
    from easnb.results import InferResult

    for array in (np.arange(12, dtype=np.float32).reshape(3, 4), np.arange(24).reshape(3, 2, 4), np.arange(3.0)):
        result = InferResult("", "", "", {"y": array}, {"y": "FP32"})
        shared = result_to_frame(result, share=True)
        assert shared.equals(result_to_frame(result))
        assert np.shares_memory(shared.to_numpy(), array) == (array.ndim >= 2)


def test_stacked_columns_are_row_major_so_batches_use_the_cached_request_head(conn: easnb.Connection, iris_frame) -> None:  # type: ignore[no-untyped-def]
    from easnb.frames import frame_to_inputs

    frame, _ = iris_frame
    meta = conn.model_metadata("iris")
    (tensor,) = frame_to_inputs(frame, meta, token=None).values()
    assert tensor.data.shape == (150, 4) and tensor.data.flags.c_contiguous
    conn.request_heads.clear()
    conn.infer_frame("iris", frame, batch_size=50, progress=False)
    assert [key[0] for key in conn.request_heads] == ["iris"]  # one head, reused by every batch
