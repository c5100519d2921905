"""HTML for metadata and results, shared by ``_repr_html_`` and the widgets.

Modest tables that read in light and dark themes (colours come from the page),
every value escaped, large results cut with the size stated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .history import History
    from .results import InferResult, ModelMetadata, ServerMetadata, TensorMetadata

MAX_ROWS = 20
_STYLE = "border-collapse:collapse;margin:2px 0;font-size:0.92em"
_CELL = "border:1px solid rgba(128,128,128,0.35);padding:2px 8px;text-align:left"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "") -> str:
    """An escaped HTML table."""
    head = "".join(f"<th style='{_CELL}'>{escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td style='{_CELL}'>{escape(str(c))}</td>" for c in row) + "</tr>"
        for row in rows
    )
    cap = f"<caption style='text-align:left;font-weight:bold'>{escape(caption)}</caption>" if caption else ""
    return f"<table style='{_STYLE}'>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def shape_text(shape: Sequence[int]) -> str:
    """``[-1, 4]`` as ``[variable, 4]``."""
    return "[" + ", ".join("variable" if d < 0 else str(d) for d in shape) + "]"


def server_html(meta: ServerMetadata) -> str:
    rows = [("name", meta.name), ("version", meta.version), ("extensions", ", ".join(meta.extensions) or "none")]
    return table(("server", ""), rows)


def tensors_html(tensors: Sequence[TensorMetadata], caption: str) -> str:
    return table(("name", "datatype", "shape"), ((t.name, t.datatype, shape_text(t.shape)) for t in tensors), caption)


def model_html(meta: ModelMetadata) -> str:
    rows = [("name", meta.name), ("versions", ", ".join(meta.versions) or "-"), ("platform", meta.platform or "-")]
    rows += [(f"property {k}", v) for k, v in meta.properties.items()]
    return (
        table(("model", ""), rows)
        + tensors_html(meta.inputs, "inputs")
        + tensors_html(meta.outputs, "outputs")
    )


def result_html(result: InferResult, max_rows: int = MAX_ROWS) -> str:
    """The result as a table when it makes one (else one line per output), its id and parameters,
    and bars for outputs that look like probabilities."""
    title = f"<b>{escape(f'{result.model_name} {result.model_version}'.strip())}</b>"
    notes = [f"id {result.id}"] if result.id else []
    notes += [f"{k}={v}" for k, v in result.parameters.items()]
    notes += [f"{n}: {k}={v}" for n, params in result.output_parameters.items() for k, v in params.items()]
    head = title + (f" <small>{escape(' · '.join(notes))}</small>" if notes else "")
    try:
        frame = result.to_frame()
    except Exception:  # outputs that do not share a batch: show them one by one
        rows = ((n, result.datatypes.get(n, ""), list(a.shape), _preview(a)) for n, a in result.outputs.items())
        body = table(("output", "datatype", "shape", "values"), rows)
    else:
        body = frame_html(frame, max_rows)
    bars = "".join(probability_bars(name, array) for name, array in result.outputs.items())
    return head + body + bars


def is_probabilities(array: Any) -> bool:
    """Floats of shape ``[n, k]`` (k > 1) whose rows each sum to 1, within float error."""
    import numpy as np

    if getattr(array, "ndim", 0) != 2 or array.dtype.kind != "f" or array.shape[1] < 2 or not array.size:
        return False
    values = np.asarray(array, dtype=np.float64)
    return bool(np.all(values >= -1e-6) and np.allclose(values.sum(axis=1), 1.0, atol=1e-3))


def probability_bars(name: str, array: Any, max_rows: int = 5, labels: Sequence[str] | None = None) -> str:
    """One row of horizontal bars per example, for a probability-like output; '' for anything else."""
    if not is_probabilities(array):
        return ""
    rows = []
    for i, row in enumerate(array[:max_rows]):
        bars = "".join(
            f"<div style='display:flex;align-items:center;gap:6px;font-size:0.85em'>"
            f"<span style='width:70px;text-align:right'>{escape(labels[j] if labels else str(j))}</span>"
            f"<span style='display:inline-block;height:10px;width:{max(1, round(160 * float(p)))}px;"
            f"background:#4c78a8'></span><span>{float(p):.3f}</span></div>"
            for j, p in enumerate(row)
        )
        rows.append(f"<div style='margin:2px 12px 4px 0'><small>row {i}</small>{bars}</div>")
    more = f"<small>showing {max_rows} of {len(array)} rows</small>" if len(array) > max_rows else ""
    return (
        f"<div class='easnb-bars'><small><b>{escape(name)}</b> as probabilities</small>"
        f"<div style='display:flex;flex-wrap:wrap'>{''.join(rows)}</div>{more}</div>"
    )


def latency_html(latencies_ms: Sequence[float]) -> str:
    """p50 / p90 / p99 and a small SVG histogram of the session's latencies."""
    import numpy as np

    if not latencies_ms:
        return ""
    values = np.asarray(latencies_ms, dtype=float)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    counts, _ = np.histogram(values, bins=min(20, max(1, len(values))))
    top = max(counts.max(), 1)
    width = 8
    bars = "".join(
        f"<rect x='{i * width}' y='{30 - 30 * c / top:.1f}' width='{width - 1}' height='{30 * c / top:.1f}' fill='#4c78a8'/>"
        for i, c in enumerate(counts)
    )
    svg = f"<svg class='easnb-histogram' width='{len(counts) * width}' height='30'>{bars}</svg>"
    return (
        f"<div class='easnb-latency'><small>{len(values)} calls · p50 {p50:.1f} ms · p90 {p90:.1f} ms · "
        f"p99 {p99:.1f} ms</small><br>{svg}</div>"
    )


def history_html(history: History) -> str:
    """The session's calls as a table, with latency percentiles and a histogram."""
    frame = history.to_frame()
    latencies = [c.latency_ms for c in history.calls if c.status == "OK"]
    if not len(frame):
        return "<i>No calls yet.</i>"
    return frame_html(frame.iloc[::-1], max_rows=50) + latency_html(latencies)


def frame_html(frame: Any, max_rows: int = MAX_ROWS) -> str:
    """A DataFrame's first rows as HTML, with the full size stated when cut."""
    note = ""
    if len(frame) > max_rows:
        note = f"<div><i>showing {max_rows} of {len(frame):,} rows x {frame.shape[1]} columns</i></div>"
        frame = frame.head(max_rows)
    return frame.to_html(border=0, max_cols=30) + note


def error_html(exc: BaseException) -> str:
    """An error's type and message in red, and its hint below, escaped."""
    hint = getattr(exc, "hint", "")
    message = getattr(exc, "message", str(exc))
    return f"<div style='color:#d33'><b>{escape(type(exc).__name__)}</b>: {escape(message)}</div>" + (
        f"<div>{escape(hint)}</div>" if hint else ""
    )


def _preview(array: Any, limit: int = 8) -> str:
    flat = array.reshape(-1)
    text = ", ".join(str(v) for v in flat[:limit])
    return f"{text}, ... ({flat.size} values)" if flat.size > limit else text
