"""The demo's models, computed with numpy only: add_sub, iris (and iris_v2, to compare), text, echo and the decoupled textgen."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files

import numpy as np

from ..results import ModelMetadata, TensorMetadata
from .model import Arrays, Model, Outputs  # noqa: F401 - re-exported
from .textgen import textgen

IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
IRIS_SPECIES = ("setosa", "versicolor", "virginica")


def _meta(name: str, inputs: list[TensorMetadata], outputs: list[TensorMetadata], **properties: str) -> ModelMetadata:
    return ModelMetadata(name, ("1",), "easnb-demo/numpy", tuple(inputs), tuple(outputs), properties)


def add_sub() -> Model:
    """INPUT0 + INPUT1 and INPUT0 - INPUT1 (INT32 [-1, 16]), as in Triton's examples."""

    def run(x: Arrays, _: Mapping[str, str]) -> Outputs:
        a, b = x["INPUT0"], x["INPUT1"]
        if a.shape != b.shape:
            raise ValueError(f"INPUT0 has shape {list(a.shape)} but INPUT1 has {list(b.shape)}; they must match.")
        return {"OUTPUT0": ("INT32", a + b), "OUTPUT1": ("INT32", a - b)}

    tensors = [TensorMetadata(n, "INT32", (-1, 16)) for n in ("INPUT0", "INPUT1")]
    outputs = [TensorMetadata(n, "INT32", (-1, 16)) for n in ("OUTPUT0", "OUTPUT1")]
    return Model(_meta("add_sub", tensors, outputs, description="sum and difference of two INT32 tensors"), run)


def load_iris() -> tuple[np.ndarray, np.ndarray]:
    """The 150 iris measurements (float32, [150, 4]) and species indices."""
    text = (files(__package__) / "iris.csv").read_text().splitlines()
    rows = [line.split(",") for line in text if line and not line.startswith(("#", "sepal"))]
    features = np.array([[float(v) for v in r[:4]] for r in rows], dtype=np.float32)
    labels = np.array([IRIS_SPECIES.index(r[4]) for r in rows])
    return features, labels


def fit_softmax(x: np.ndarray, y: np.ndarray, classes: int, steps: int = 500, rate: float = 0.5) -> tuple[np.ndarray, ...]:
    """A multinomial logistic regression by gradient descent on standardised features."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    z = (x - mean) / std
    weights = np.zeros((x.shape[1], classes))
    bias = np.zeros(classes)
    onehot = np.eye(classes)[y]
    for _ in range(steps):
        p = _softmax(z @ weights + bias)
        weights -= rate * (z.T @ (p - onehot) / len(x) + 1e-3 * weights)
        bias -= rate * (p - onehot).mean(axis=0)
    return mean, std, weights, bias


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return probabilities


def iris() -> Model:
    """Iris species from four measurements (FP32 [-1, 4]): probabilities and a label."""
    mean, std, weights, bias = fit_softmax(*load_iris(), classes=3)
    names = np.array([s.encode() for s in IRIS_SPECIES], dtype=object)

    def run(x: Arrays, _: Mapping[str, str]) -> Outputs:
        p = _softmax((x["features"].astype(np.float64) - mean) / std @ weights + bias)
        return {"probabilities": ("FP32", p.astype(np.float32)), "label": ("BYTES", names[p.argmax(axis=1)])}

    inputs = [TensorMetadata("features", "FP32", (-1, 4))]
    outputs = [TensorMetadata("probabilities", "FP32", (-1, 3)), TensorMetadata("label", "BYTES", (-1,))]
    return Model(
        _meta("iris", inputs, outputs, features=",".join(IRIS_FEATURES), classes=",".join(IRIS_SPECIES)), run
    )


#: iris_v2 answers differently from iris where sepal_length is at least this (6 of the 150 iris rows).
IRIS_V2_CHANGED_FROM = 7.5


def iris_v2() -> Model:
    """A "new version" of iris for trying comparisons: computed in float32 (differences of about 1e-7
    everywhere) and with the probabilities reversed where sepal_length >= 7.5 (other labels there)."""
    mean, std, weights, bias = (np.asarray(a, np.float32) for a in fit_softmax(*load_iris(), classes=3))
    names = np.array([s.encode() for s in IRIS_SPECIES], dtype=object)

    def run(x: Arrays, _: Mapping[str, str]) -> Outputs:
        features = x["features"].astype(np.float32)
        p = _softmax((features - mean) / std @ weights + bias).astype(np.float32)
        changed = features[:, 0] >= IRIS_V2_CHANGED_FROM
        p[changed] = p[changed][:, ::-1]
        return {"probabilities": ("FP32", p), "label": ("BYTES", names[p.argmax(axis=1)])}

    base = iris().metadata
    return Model(_meta("iris_v2", list(base.inputs), list(base.outputs), **base.properties), run)


def text() -> Model:
    """Upper-cased text and its length in characters (BYTES [-1])."""

    def run(x: Arrays, _: Mapping[str, str]) -> Outputs:
        words = [v.decode("utf-8", "replace") for v in x["TEXT"].reshape(-1)]
        upper = np.array([w.upper().encode() for w in words], dtype=object).reshape(x["TEXT"].shape)
        lengths = np.array([len(w) for w in words], dtype=np.int64).reshape(x["TEXT"].shape)
        return {"UPPER": ("BYTES", upper), "LENGTH": ("INT64", lengths)}

    return Model(
        _meta("text", [TensorMetadata("TEXT", "BYTES", (-1,))],
              [TensorMetadata("UPPER", "BYTES", (-1,)), TensorMetadata("LENGTH", "INT64", (-1,))]),
        run,
    )


def echo() -> Model:
    """Every input returned unchanged, under the same name and datatype."""

    def run(x: Arrays, datatypes: Mapping[str, str]) -> Outputs:
        return {name: (datatypes[name], array) for name, array in x.items()}

    return Model(_meta("echo", [], [], description="returns its inputs unchanged"), run, any_inputs=True)


def all_models() -> dict[str, Model]:
    """The demo's models by name."""
    return {m.metadata.name: m for m in (add_sub(), iris(), iris_v2(), text(), echo(), textgen())}
