"""HTML for metadata and results, shared by ``_repr_html_`` and the widgets.

Modest tables that read in light and dark themes (colours come from the page),
every value escaped, large results cut with the size stated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    """The result as a table when it makes one, else one line per output."""
    title = escape(f"{result.model_name} {result.model_version}".strip())
    try:
        frame = result.to_frame()
    except Exception:  # outputs that do not share a batch: show them one by one
        rows = ((n, result.datatypes.get(n, ""), list(a.shape), _preview(a)) for n, a in result.outputs.items())
        return f"<b>{title}</b>" + table(("output", "datatype", "shape", "values"), rows)
    return f"<b>{title}</b>" + frame_html(frame, max_rows)


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
