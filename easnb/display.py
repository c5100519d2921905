"""HTML for metadata and results, shared by ``_repr_html_`` and the widgets.

Modest tables that read in light and dark themes (colours come from the page),
every value escaped (through ``easnb.markup``), large results cut with the size stated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from .markup import Markup, html, join
from .value_protocols import ModelInfo, ResultInfo, ServerInfo, TensorInfo

#: what a call's latency_ms covers
LATENCY_MEANS = "encoding, the round trip to the server and back, decoding"
MAX_ROWS = 20
_STYLE = "border-collapse:collapse;margin:2px 0;font-size:0.92em"
_CELL = "border:1px solid rgba(128,128,128,0.35);padding:2px 8px;text-align:left"
_FRAME_CELL = "border-bottom:1px solid rgba(128,128,128,0.3);padding:2px 10px;text-align:right;vertical-align:top"


def table(header: Sequence[Any], rows: Iterable[Sequence[Any]], caption: Any = "") -> Markup:
    """An HTML table; every header, cell and the caption escaped (``Markup`` cells go in as they are)."""
    head = join(html("<th style='{}'>{}</th>", _CELL, h) for h in header)
    body = join(html("<tr>{}</tr>", join(html("<td style='{}'>{}</td>", _CELL, c) for c in row)) for row in rows)
    cap = html("<caption style='text-align:left;font-weight:bold'>{}</caption>", caption) if caption else ""
    return html("<table style='{}'>{}<thead><tr>{}</tr></thead><tbody>{}</tbody></table>", _STYLE, cap, head, body)


def shape_text(shape: Sequence[int]) -> str:
    """``[-1, 4]`` as ``[variable, 4]``."""
    return "[" + ", ".join("variable" if d < 0 else str(d) for d in shape) + "]"


def server_html(meta: ServerInfo) -> Markup:
    rows = [("name", meta.name), ("version", meta.version), ("extensions", ", ".join(meta.extensions) or "none")]
    return table(("field", "value"), rows, caption="server")


def tensors_html(tensors: Sequence[TensorInfo], caption: str) -> Markup:
    return table(("name", "datatype", "shape"), ((t.name, t.datatype, shape_text(t.shape)) for t in tensors), caption)


def model_html(meta: ModelInfo) -> Markup:
    rows = [("name", meta.name), ("versions", ", ".join(meta.versions) or "-"), ("platform", meta.platform or "-")]
    rows += [(f"property {k}", v) for k, v in meta.properties.items()]
    return (
        table(("field", "value"), rows, caption="model")
        + tensors_html(meta.inputs, "inputs")
        + tensors_html(meta.outputs, "outputs")
    )


def result_html(result: ResultInfo, max_rows: int = MAX_ROWS) -> Markup:
    """The result as a table when it makes one (else one line per output), its id and parameters,
    and bars for outputs that look like probabilities."""
    title = html("<b>{}</b>", f"{result.model_name} {result.model_version}".strip())
    notes = [f"id {result.id}"] if result.id else []
    notes += [f"{k}={v}" for k, v in result.parameters.items()]
    notes += [f"{n}: {k}={v}" for n, params in result.output_parameters.items() for k, v in params.items()]
    head = title + (html(" <small>{}</small>", " · ".join(notes)) if notes else "")
    try:
        frame = result.to_frame()
    except Exception:  # outputs that do not share a batch: show them one by one
        rows = ((n, result.datatypes.get(n, ""), list(a.shape), _preview(a)) for n, a in result.outputs.items())
        body = table(("output", "datatype", "shape", "values"), rows)
    else:
        body = frame_html(frame, max_rows)
    bars = join(probability_bars(name, array) for name, array in result.outputs.items())
    return head + body + bars


def is_probabilities(array: Any) -> bool:
    """Floats of shape ``[n, k]`` (k > 1) whose rows each sum to 1, within float error."""
    import numpy as np

    if getattr(array, "ndim", 0) != 2 or array.dtype.kind != "f" or array.shape[1] < 2 or not array.size:
        return False
    values = np.asarray(array, dtype=np.float64)
    return bool(np.all(values >= -1e-6) and np.allclose(values.sum(axis=1), 1.0, atol=1e-3))


def probability_bars(name: str, array: Any, max_rows: int = 5, labels: Sequence[str] | None = None) -> Markup:
    """One row of horizontal bars per example, for a probability-like output; '' for anything else."""
    if not is_probabilities(array):
        return Markup()
    rows = []
    for i, row in enumerate(array[:max_rows]):
        bars = join(
            html(
                "<div style='display:flex;align-items:center;gap:6px;font-size:0.85em'>"
                "<span style='width:70px;text-align:right'>{label}</span>"
                "<span style='display:inline-block;height:10px;width:{width}px;background:#4c78a8'></span>"
                "<span>{p:.3f}</span></div>",
                label=labels[j] if labels else str(j), width=max(1, round(160 * float(p))), p=float(p),
            )
            for j, p in enumerate(row)
        )
        rows.append(html("<div style='margin:2px 12px 4px 0'><small>row {}</small>{}</div>", i, bars))
    more = html("<small>showing {} of {} rows</small>", max_rows, len(array)) if len(array) > max_rows else ""
    return html(
        "<div class='easnb-bars'><small><b>{}</b> as probabilities</small>"
        "<div style='display:flex;flex-wrap:wrap'>{}</div>{}</div>",
        name, join(rows), more,
    )


def latency_html(latencies_ms: Sequence[float], kind: str = "") -> Markup:
    """p50 / p90 / p99 and a small SVG histogram of the session's latencies (of ``kind``'s calls, if named)."""
    import numpy as np

    if not latencies_ms:
        return Markup()
    values = np.asarray(latencies_ms, dtype=float)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    counts, _ = np.histogram(values, bins=min(20, max(1, len(values))))
    top = max(counts.max(), 1)
    width = 8
    bars = join(
        html("<rect x='{}' y='{:.1f}' width='{}' height='{:.1f}' fill='#4c78a8'/>", i * width, 30 - 30 * c / top, width - 1, 30 * c / top)
        for i, c in enumerate(counts)
    )
    svg = html("<svg class='easnb-histogram' width='{}' height='30'>{}</svg>", len(counts) * width, bars)
    return html(
        "<div class='easnb-latency'><small>{}{} call{} · p50 {:.1f} ms · p90 {:.1f} ms · p99 {:.1f} ms</small><br>{}</div>",
        f"{kind}: " if kind else "", len(values), "" if len(values) == 1 else "s", p50, p90, p99, svg,
    )


def history_html(history: Any) -> Markup:
    """The session's calls (an ``easnb.history.History``) as a table, with latency percentiles and a histogram."""
    frame = history.to_frame()
    if not len(frame):
        return Markup("<i>No calls yet.</i>")
    frame["latency_ms"] = [f"{c.latency_ms:.1f}" for c in history.calls[: len(frame)]]  # as the Infer tab shows it
    note = html("<div><small>latency_ms of each call: {}, measured once (its tab shows the same)</small></div>", LATENCY_MEANS)
    by_kind = join(latency_html(history.latencies(kind), kind) for kind in history.kinds())  # one distribution a kind
    return frame_html(frame.iloc[::-1], max_rows=50) + note + by_kind


def frame_html(frame: Any, max_rows: int = MAX_ROWS, float_format: Any = None) -> Markup:
    """A DataFrame's first rows as HTML (pandas escapes every label and value), with the full size stated when cut;
    ``float_format`` (a callable, as pandas takes it) formats the floats."""
    note = Markup()
    if len(frame) > max_rows:
        note = html("<div><i>showing {} of {:,} rows x {} columns</i></div>", max_rows, len(frame), frame.shape[1])
        frame = frame.head(max_rows)
    table = frame.to_html(border=0, max_cols=30, escape=True, float_format=float_format)
    # inline cell spacing: inside a widget JupyterLab's table styles do not reach, and headers ran together
    table = re.sub(r"<(th|td)(?=[ >])", lambda m: f"<{m.group(1)} style='{_FRAME_CELL}'", table)
    table = table.replace("<table ", f"<table style='{_STYLE}' ", 1)
    return Markup(f"<div style='overflow-x:auto'>{table}</div>") + note  # a wide frame scrolls, never cut off


def error_html(exc: BaseException) -> Markup:
    """An error's type and message in red, and its hint below, escaped."""
    hint = getattr(exc, "hint", "")
    message = getattr(exc, "message", str(exc))
    return html("<div style='color:#d33'><b>{}</b>: {}</div>", type(exc).__name__, message) + (
        html("<div>{}</div>", hint) if hint else ""
    )


def _preview(array: Any, limit: int = 8) -> str:
    flat = array.reshape(-1)
    text = ", ".join(str(v) for v in flat[:limit])
    return f"{text}, ... ({flat.size} values)" if flat.size > limit else text
