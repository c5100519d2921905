"""A/B comparison: the same rows through two models (two endpoints, or two models or versions on one).

>>> report = easnb.compare(conn_a, conn_b, "iris", df)                 # doctest: +SKIP
>>> report = easnb.compare(conn, None, "iris", df, model_b="iris_v2")  # doctest: +SKIP
>>> report.verdict, report.outputs, report.differing                  # doctest: +SKIP
('differs on 6 of 150 rows', ...)
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .display import frame_html
from .errors import EasnbError, scrub
from .markup import Markup, escape

if TYPE_CHECKING:
    import pandas as pd

    from .link import Link


@dataclass
class OutputDiff:
    """How one output differs: the largest absolute and relative difference (numbers), the rows
    beyond ``rtol``/``atol``, and the share of rows whose label (text, or argmax of several
    columns) agrees (``nan`` when the output has no label)."""

    name: str
    kind: str  # "number", "text" or "scores" (several numeric columns: argmax is the label)
    max_abs: float
    max_rel: float
    rows_beyond: int
    label_agreement: float


@dataclass
class Comparison:
    """What ``compare`` found. ``same`` is true when every row is within tolerance and both sides
    give the same outputs; ``verdict`` says it in words."""

    name_a: str
    name_b: str
    rows: int
    outputs: list[OutputDiff]
    differing: pd.DataFrame  # the rows that differ: inputs, then each differing output's A and B columns
    only_a: list[str]
    only_b: list[str]
    latency: pd.DataFrame  # ms, p50/p90/p99/mean (rows) for A and B (columns)
    rtol: float
    atol: float
    identical: bool = field(default=False)
    unlike: list[str] = field(default_factory=list)  # outputs on both sides that cannot be compared: numbers vs text, widths

    @property
    def same(self) -> bool:
        return not self.only_a and not self.only_b and not self.unlike and len(self.differing) == 0

    @property
    def verdict(self) -> str:
        if self.only_a or self.only_b or self.unlike:
            return "differs: " + "; ".join(
                f"{what}: {', '.join(names)}"
                for what, names in (("outputs only in A", self.only_a), ("outputs only in B", self.only_b),
                                    ("outputs of another kind", self.unlike)) if names
            )
        if self.identical:
            return "identical"
        if self.same:
            return "within tolerance"
        return f"differs on {len(self.differing):,} of {self.rows:,} rows"

    @property
    def frame(self) -> pd.DataFrame:
        """One row per output compared."""
        import pandas as pd

        return pd.DataFrame([vars(o) for o in self.outputs]).set_index("name") if self.outputs else pd.DataFrame()

    def __repr__(self) -> str:
        return f"<Comparison {self.name_a} vs {self.name_b}: {self.verdict}>"

    def _repr_html_(self) -> str:
        colour = "#2a7" if self.same else "#d33"
        parts = [
            f"<div class='easnb-compare'><div class='easnb-verdict' style='font-size:1.15em;color:{colour}'>"
            f"<b>{escape(self.verdict)}</b></div>",
            f"<div><small>A: {escape(self.name_a)} · B: {escape(self.name_b)} · {self.rows:,} rows · "
            f"rtol {self.rtol:g}, atol {self.atol:g}</small></div>",
        ]
        # display.frame_html: spaced cells (headers ran together) and a wide table scrolls instead of being cut off
        if self.outputs:
            parts.append(frame_html(self.frame, float_format=lambda v: f"{v:.3g}"))
        if len(self.differing):
            parts.append(f"<div><b>rows that differ</b></div>{frame_html(self.differing)}")
        if len(self.latency):
            parts.append(f"<div><b>latency (ms)</b></div>{frame_html(self.latency, float_format=lambda v: f'{v:.2f}')}")
        return Markup("".join(parts) + "</div>")


def _groups(columns: list[str], declared: list[str]) -> dict[str, list[str]]:
    """Result columns grouped by the output they came from (``probabilities_0``... are one output)."""
    groups: dict[str, list[str]] = {}
    for column in columns:
        owner = next((n for n in declared if column == n or (column.startswith(n + "_") and column[len(n) + 1:].isdigit())), column)
        groups.setdefault(owner, []).append(column)
    return groups


def _diff(name: str, a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> tuple[OutputDiff, np.ndarray]:
    """One output's differences and the mask of rows beyond tolerance."""
    if _numeric(a) and _numeric(b):
        x, y = a.astype(np.float64), b.astype(np.float64)
        same = (x == y) | (np.isnan(x) & np.isnan(y))  # equal infinities and NaN on both sides differ by nothing
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            # NaN on one side only, or infinities of other signs: an unbounded difference, not a missing one
            gap = np.where(same, 0.0, np.nan_to_num(np.abs(x - y), nan=np.inf, posinf=np.inf))
            rel = np.where(same, 0.0, np.nan_to_num(gap / np.maximum(np.abs(y), np.finfo(np.float64).tiny), nan=np.inf, posinf=np.inf))
        rows = np.asarray(~np.isclose(x, y, rtol=rtol, atol=atol, equal_nan=True).all(axis=1))
        scores = x.shape[1] > 1
        agreement = float(np.mean(x.argmax(axis=1) == y.argmax(axis=1))) if scores and len(x) else float("nan")
        max_abs = float(np.max(gap)) if gap.size else 0.0
        max_rel = float(np.max(rel)) if rel.size else 0.0
        return OutputDiff(name, "scores" if scores else "number", max_abs, max_rel, int(rows.sum()), agreement), rows
    rows = ~(a.astype(str) == b.astype(str)).all(axis=1)
    agreement = float(1 - rows.mean()) if len(rows) else float("nan")
    return OutputDiff(name, "text", float("nan"), float("nan"), int(rows.sum()), agreement), rows


def _numeric(values: np.ndarray) -> bool:
    return values.dtype.kind in "biuf"


def _latency(conn: Link, model: str, data: Any, version: str, samples: int) -> list[float]:
    """``samples`` single calls of the first rows, in milliseconds."""
    request = conn.encode_infer(model, data, version=version)
    stub = conn.channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    metadata = conn.metadata
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        conn.call("ModelInfer", lambda s: stub(request, timeout=s, metadata=metadata))
        times.append((time.perf_counter() - start) * 1000)
    return times


def _compare(
    conn_a: Link,
    conn_b: Link | None,
    model: str,
    data: pd.DataFrame | dict[str, Any],
    model_b: str | None = None,
    *,
    version_a: str = "",
    version_b: str = "",
    rtol: float = 1e-5,
    atol: float = 1e-6,
    batch_size: int = 1024,
    latency_samples: int = 30,
    progress: bool = False,
) -> Comparison:
    """Send the rows of ``data`` to A (``conn_a``, ``model``) and B (``conn_b`` or the same
    connection, ``model_b`` or the same model) with ``infer_frame`` and compare the answers
    (a dict of input arrays instead of a DataFrame is sent as one request to each).

    Numbers differ when ``not isclose(a, b, rtol, atol)`` (NaN equals NaN); text when not equal;
    outputs of several numeric columns are also compared by argmax (the label they give).
    NaN on one side only, or a finite value against an infinity, is an infinite difference; an
    output that is numbers on one side and text (or another width) on the other is listed in
    ``unlike`` and the verdict says "differs". Latency: ``latency_samples`` single-row calls to each, interleaved A, B, A, B, so the
    machine's drifts hit both alike. Raises ``EasnbError`` for an empty frame, and the usual
    errors (``BatchError`` with ``.partial``) when a side fails.
    """
    import pandas as pd

    from .arguments import compare_call

    model, model_b, version_a, version_b, rtol, atol, batch_size, latency_samples, progress = compare_call(model, model_b, version_a, version_b, rtol, atol, batch_size, latency_samples, progress)
    arrays, sample = isinstance(data, dict), data
    if not arrays and (not hasattr(data, "iloc") or len(data) == 0):
        raise EasnbError("compare needs a DataFrame with at least one row, or a dict of input arrays.",
                         hint="e.g. easnb.compare(a, b, 'iris', df)")
    conn_b = conn_a if conn_b is None else conn_b
    model_b = model if model_b is None else model_b
    if conn_b is conn_a and model_b == model and version_b == version_a:
        raise EasnbError("A and B are the same model on the same connection.", hint="Give conn_b, model_b or version_b.")
    name_a = f"{model}{':' + version_a if version_a else ''} on {conn_a.endpoint.target}"
    name_b = f"{model_b}{':' + version_b if version_b else ''} on {conn_b.endpoint.target}"
    options = {"batch_size": batch_size, "progress": progress}
    if isinstance(data, dict):  # one request of these arrays to each side
        a = conn_a.infer(model, data, version=version_a).to_frame()
        b = conn_b.infer(model_b, data, version=version_b).to_frame()
        data = pd.DataFrame(index=a.index)
    else:
        a = conn_a.infer_frame(model, data, version=version_a, **options)
        b = conn_b.infer_frame(model_b, data, version=version_b, **options)
    groups_a = _groups(list(a.columns), [t.name for t in conn_a.cached_model_metadata(model, version_a).outputs])
    groups_b = _groups(list(b.columns), [t.name for t in conn_b.cached_model_metadata(model_b, version_b).outputs])
    only_a = [n for n in groups_a if n not in groups_b]
    only_b = [n for n in groups_b if n not in groups_a]
    unlike: list[str] = []
    outputs: list[OutputDiff] = []
    beyond = np.zeros(len(data), dtype=bool)
    shown: dict[str, Any] = {}
    identical = True
    for name in [n for n in groups_a if n in groups_b]:
        cols_a, cols_b = groups_a[name], groups_b[name]
        x, y = a[cols_a].to_numpy(), b[cols_b].to_numpy()
        if len(cols_a) != len(cols_b):
            unlike.append(f"{name} ({len(cols_a)} columns in A, {len(cols_b)} in B)")
            continue
        if _numeric(x) != _numeric(y):  # 0.5 and the text "0.5" are not the same answer
            kinds = ["numbers" if _numeric(v) else "text" for v in (x, y)]
            unlike.append(f"{name} ({kinds[0]} in A, {kinds[1]} in B)")
            continue
        diff, rows = _diff(name, x, y, rtol, atol)
        identical = identical and bool(np.array_equal(x.astype(str), y.astype(str)))
        outputs.append(diff)
        if rows.any():
            beyond |= rows
            for ca, cb in zip(cols_a, cols_b):
                shown[f"A {ca}"], shown[f"B {cb}"] = a[ca], b[cb]
    positions = np.flatnonzero(beyond)
    differing = data.iloc[positions].copy()
    for column, series in shown.items():
        differing[column] = series.iloc[positions].to_numpy()
    latency = pd.DataFrame()
    if latency_samples > 0:
        first = sample if arrays else data.iloc[:1]
        times_a, times_b = [], []
        for _ in range(latency_samples):  # interleaved: A and B see the same moments of the machine
            times_a += _latency(conn_a, model, first, version_a, 1)
            times_b += _latency(conn_b, model_b, first, version_b, 1)
        latency = pd.DataFrame(
            {side: {f"p{q}": float(np.percentile(t, q)) for q in (50, 90, 99)} | {"mean": float(np.mean(t))}
             for side, t in (("A", times_a), ("B", times_b))}
        )
    return Comparison(name_a, name_b, len(data), outputs, differing, only_a, only_b, latency, rtol, atol,
                      identical=identical and not only_a and not only_b and not unlike, unlike=unlike)


@functools.wraps(_compare)
def compare(conn_a: Link, conn_b: Link | None, *args: Any, **kwargs: Any) -> Comparison:
    # the frames' checks name what each server's metadata says: either token redacted from any error
    try:
        return _compare(conn_a, conn_b, *args, **kwargs)
    except EasnbError as exc:
        for conn in (conn_a, conn_b):
            scrub(exc, getattr(getattr(conn, "settings", None), "token", None))
        raise
