"""Load tests and comparisons as History records: what was asked, and the same again as easnb code.

The saved request holds the inputs as arrays (or the name of the notebook's DataFrame), the
levels and the tolerances; never a token (the code reads ``EASNB_TOKEN`` / ``EASNB_TOKEN_B``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import EasnbError

if TYPE_CHECKING:
    from .history import Call

KINDS = ("load", "compare")


def saved_data(data: Any, frame_name: str = "") -> dict[str, Any]:
    """The request's data: arrays with datatypes, or the DataFrame's variable name."""
    from .history import saved_inputs

    if hasattr(data, "columns"):
        return {"frame": frame_name or "df", "rows": len(data)}
    if isinstance(data, str):
        return {"prompt": data}
    return {"inputs": saved_inputs(data)}


def summary(request: dict[str, Any]) -> str:
    """A short line for History's table."""
    if "frame" in request:
        data = f"DataFrame {request['frame']} ({request['rows']} rows)"
    elif "prompt" in request:
        data = f"prompt of {len(request['prompt'])} characters (streaming)"
    else:
        from .history import summarize_inputs

        data = summarize_inputs(request["inputs"])
    if request.get("mode"):
        return f"{request['mode']} {','.join(f'{v:g}' for v in request['levels'])} x {request['seconds']:g} s; {data}"
    return f"vs {request['model_b']} on {request.get('endpoint_b') or 'the same endpoint'}; {data}"


def _data_lines(r: dict[str, Any]) -> tuple[list[str], str]:
    from .codegen import _array_literal

    if "frame" in r:
        return [f"# {r['frame']}: your DataFrame ({r['rows']} rows)"], r["frame"]
    if "prompt" in r:
        return [f"prompt = {r['prompt']!r}"], "prompt"
    inputs = ",\n    ".join(
        f'"{n}": easnb.Tensor({_array_literal(t["array"], t["datatype"])}, "{t["datatype"]}")' for n, t in r["inputs"].items()
    )
    return [f"inputs = {{\n    {inputs}\n}}"], "inputs"


def easnb_code(call: Call) -> str:
    """A load test or comparison as easnb code to paste."""
    from .codegen import _connect_line

    r = call.request
    data_lines, data = _data_lines(r)
    lines = ["import os", "", "import numpy as np", "", "import easnb", "", _connect_line(call), *data_lines]
    if call.kind == "load":
        stream = ", stream=True" if "prompt" in r else ""
        lines.append(f"report = conn.load_test({r['model']!r}, {data}, {r['mode']}={list(r['levels'])!r}, "
                     f"seconds={r['seconds']!r}, warmup={r['warmup']!r}{stream})")
        lines.append("report  # a table and a chart; report.frame, report.to_json()")
        return "\n".join(lines) + "\n"
    other = "conn"
    if r.get("endpoint_b"):
        lines.append(f'other = easnb.connect({r["endpoint_b"]!r}, token=os.environ.get("EASNB_TOKEN_B"))')
        other = "other"
    version = f", version_b={r['version_b']!r}" if r.get("version_b") else ""
    lines.append(f"report = easnb.compare(conn, {other}, {r['model']!r}, {data}, model_b={r['model_b']!r}{version}, "
                 f"rtol={r['rtol']!r}, atol={r['atol']!r})")
    lines.append("report  # the verdict first; report.differing, report.latency")
    return "\n".join(lines) + "\n"


def refuse(call: Call, flavour: str) -> EasnbError:
    """Why a load test or comparison has no ``flavour`` code, and what to use instead."""
    return EasnbError(
        f"A {call.kind} is many calls; {flavour} makes one at a time.",
        hint=f"Copy it as easnb code, or use the command line: easnb {call.kind} --help.",
    )
