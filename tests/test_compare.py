"""A/B comparison on the demo's iris and iris_v2, which differ on known rows."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest

import easnb
from easnb.demo import DemoServer
from easnb.demo.models import IRIS_FEATURES, IRIS_V2_CHANGED_FROM, Model, load_iris
from easnb.demo.server import SERVER_OPTIONS, V2Service, v2_handler
from easnb.results import ModelMetadata, TensorMetadata


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    features, _ = load_iris()
    return pd.DataFrame(features, columns=list(IRIS_FEATURES))


def test_two_models_differ_on_the_known_rows(conn: easnb.Connection, frame: pd.DataFrame) -> None:
    report = easnb.compare(conn, None, "iris", frame, model_b="iris_v2", latency_samples=5)
    changed = frame.index[frame["sepal_length"] >= IRIS_V2_CHANGED_FROM]
    assert report.verdict == f"differs on {len(changed)} of 150 rows" and not report.same
    assert list(report.differing.index) == list(changed)
    assert {"A label", "B label", "A probabilities_0", "B probabilities_2"} <= set(report.differing.columns)
    by_name = {o.name: o for o in report.outputs}
    assert by_name["label"].kind == "text" and by_name["label"].rows_beyond == len(changed)
    assert by_name["label"].label_agreement == pytest.approx(1 - len(changed) / 150)
    assert by_name["probabilities"].kind == "scores" and by_name["probabilities"].label_agreement == pytest.approx(1 - len(changed) / 150)
    assert by_name["probabilities"].max_abs > 0.1
    assert list(report.latency.columns) == ["A", "B"] and list(report.latency.index) == ["p50", "p90", "p99", "mean"]
    html = report._repr_html_()
    assert html.index("differs on 6 of 150 rows") < html.index("<table")


def test_report_tables_are_spaced_and_scroll(conn: easnb.Connection, frame: pd.DataFrame) -> None:
    """In the Compare tab the headers ran together ("kind max_abs") and the wide table of differing
    rows was cut off at the tab's edge: every table has padded cells and scrolls sideways."""
    report = easnb.compare(conn, None, "iris", frame, model_b="iris_v2", latency_samples=3)
    html = str(report._repr_html_())
    tables = html.count("<table")
    assert tables == 3
    assert html.count("<div style='overflow-x:auto'><table") == tables
    assert "<th>" not in html and "<td>" not in html and html.count("padding:") >= 3 * 4


def test_float32_differences_are_within_tolerance(conn: easnb.Connection, frame: pd.DataFrame) -> None:
    calm = frame[frame["sepal_length"] < IRIS_V2_CHANGED_FROM]
    report = easnb.compare(conn, None, "iris", calm, model_b="iris_v2", latency_samples=0)
    probabilities = {o.name: o for o in report.outputs}["probabilities"]
    assert report.verdict == "within tolerance" and report.same and len(report.differing) == 0
    assert 0 < probabilities.max_abs < 1e-5
    strict = easnb.compare(conn, None, "iris", calm, model_b="iris_v2", rtol=0, atol=0, latency_samples=0)
    assert strict.verdict.startswith("differs on ")


def test_two_endpoints_same_model_are_identical(conn: easnb.Connection, demo: DemoServer, frame: pd.DataFrame) -> None:
    with easnb.connect(demo.endpoint, token=demo.token) as other:
        report = easnb.compare(conn, other, "iris", frame.head(20), latency_samples=3)
    assert report.verdict == "identical" and report.same and report.latency.loc["p50", "B"] > 0


def test_one_sided_outputs(conn: easnb.Connection) -> None:
    data = pd.DataFrame({"TEXT": ["a", "b"]})
    report = easnb.compare(conn, None, "text", data, model_b="echo", latency_samples=0)
    assert set(report.only_a) == {"UPPER", "LENGTH"} and report.only_b == ["TEXT"]
    assert "outputs only in A" in report.verdict and not report.same


def test_bad_input(conn: easnb.Connection, frame: pd.DataFrame) -> None:
    with pytest.raises(easnb.EasnbError, match="the same model"):
        easnb.compare(conn, None, "iris", frame)
    with pytest.raises(easnb.EasnbError, match="at least one row"):
        easnb.compare(conn, None, "iris", frame.head(0), model_b="iris_v2")
    with pytest.raises(easnb.NotFoundError):
        easnb.compare(conn, None, "iris", frame, model_b="nope")


def test_values_are_escaped(conn: easnb.Connection) -> None:
    data = pd.DataFrame({"TEXT": ["<script>x</script>", "b"]})
    report = easnb.compare(conn, None, "text", data, model_b="echo", latency_samples=0)
    assert "<script>" not in report._repr_html_()


def _model(name: str, datatype: str, run: Any, shape: tuple[int, ...] = (-1,)) -> Model:
    meta = ModelMetadata(name, ("1",), "test", (TensorMetadata("x", "FP32", (-1,)),), (TensorMetadata("y", datatype, shape),), {})
    return Model(meta, lambda x, types: {"y": (datatype, run(x["x"]))})


@pytest.fixture(scope="module")
def odd() -> Iterator[easnb.Connection]:
    """Models whose one output ``y`` is x itself, or x with NaN, infinities, as text, or two columns wide."""
    models = {
        "same": _model("same", "FP32", lambda x: x),
        "nan": _model("nan", "FP32", lambda x: np.where(x > 2, np.nan, x).astype(np.float32)),
        "inf": _model("inf", "FP32", lambda x: np.full_like(x, np.inf)),
        "inf_too": _model("inf_too", "FP32", lambda x: np.full_like(x, np.inf)),
        "text": _model("text", "BYTES", lambda x: np.array([str(v).encode() for v in x], object)),
        "wide": _model("wide", "FP32", lambda x: np.stack([x, x], 1), (-1, 2)),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=SERVER_OPTIONS, handlers=[v2_handler(V2Service(models))])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with easnb.connect(f"127.0.0.1:{port}", timeout=10) as conn:
        yield conn
    server.stop(None).wait()


def test_nan_infinities_and_outputs_of_another_kind(odd: easnb.Connection) -> None:
    data = pd.DataFrame({"x": np.arange(8, dtype=np.float32)})

    def run(a: str, b: str) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no RuntimeWarning from inf - inf or NaN
            return easnb.compare(odd, None, a, data, model_b=b, latency_samples=0)

    nan = run("same", "nan")  # NaN on one side is an unbounded difference, not none at all
    assert nan.verdict == "differs on 5 of 8 rows" and nan.outputs[0].max_abs == np.inf and nan.outputs[0].max_rel == np.inf
    infinite = run("inf", "inf_too")  # equal infinities differ by nothing
    assert infinite.verdict == "identical" and infinite.outputs[0].max_abs == 0 and infinite.outputs[0].max_rel == 0
    assert run("same", "inf").outputs[0].max_abs == np.inf
    text = run("same", "text")  # 0.0 and the text "0.0" are not the same answer
    assert not text.same and not text.identical and text.verdict == "differs: outputs of another kind: y (numbers in A, text in B)"
    wide = run("same", "wide")
    assert not wide.same and wide.verdict == "differs: outputs of another kind: y (1 columns in A, 2 in B)" and not wide.only_a
