"""Load tests and comparisons as History records: what was asked, and the same again as easnb code.

The saved request holds the inputs as arrays (or the name of the notebook's DataFrame), the
levels and the tolerances; never a token (the code reads ``EASNB_TOKEN`` / ``EASNB_TOKEN_B``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .call_record import saved_inputs, summarize_inputs
from .code_literals import array_literal, connect_line, literal
from .errors import EasnbError

if TYPE_CHECKING:
    from .call_record import Call

KINDS = ("load", "compare")
MODES = ("concurrency", "rate")


def saved_data(data: Any, frame_name: str = "") -> dict[str, Any]:
    """The request's data: arrays with datatypes, or the DataFrame's variable name."""

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

        data = summarize_inputs(request["inputs"])
    if request.get("mode"):
        return f"{request['mode']} {','.join(f'{v:g}' for v in request['levels'])} x {request['seconds']:g} s; {data}"
    return f"vs {request['model_b']} on {request.get('endpoint_b') or 'the same endpoint'}; {data}"


def _data_lines(r: dict[str, Any]) -> tuple[list[str], str]:
    import keyword


    if "frame" in r:
        name = str(r["frame"])
        plain = name.isascii() and name.isidentifier() and not keyword.iskeyword(name)
        return [f"# {literal(name)}: your DataFrame ({int(r['rows'])} rows)"], name if plain else f"globals()[{literal(name)}]"
    if "prompt" in r:
        return [f"prompt = {literal(r['prompt'])}"], "prompt"
    inputs = ",\n    ".join(
        f"{literal(n)}: easnb.Tensor({array_literal(t['array'], t['datatype'])}, {literal(t['datatype'])})" for n, t in r["inputs"].items()
    )
    return [f"inputs = {{\n    {inputs}\n}}"], "inputs"


def easnb_code(call: Call) -> str:
    """A load test or comparison as easnb code to paste.

    Every name and number enters the code as a literal (``code_literals.literal``); the DataFrame's
    name becomes a bare name only when it is a plain identifier (else ``globals()[...]``).
    """

    r = call.request
    data_lines, data = _data_lines(r)
    lines = ["import os", "", "import numpy as np", "", "import easnb", "", connect_line(call), *data_lines]
    if call.kind == "load":
        if r["mode"] not in MODES:
            raise EasnbError(f"A load test's mode is one of {', '.join(MODES)}, not {r['mode']!r}.")
        stream = ", stream=True" if "prompt" in r else ""
        lines.append(f"report = conn.load_test({literal(r['model'])}, {data}, {r['mode']}={literal(list(r['levels']))}, "
                     f"seconds={literal(r['seconds'])}, warmup={literal(r['warmup'])}{stream})")
        lines.append("report  # a table and a chart; report.frame, report.to_json()")
        return "\n".join(lines) + "\n"
    other = "conn"
    if r.get("endpoint_b"):
        lines.append(f'other = easnb.connect({literal(r["endpoint_b"])}, token=os.environ.get("EASNB_TOKEN_B"))')
        other = "other"
    version = f", version_b={literal(r['version_b'])}" if r.get("version_b") else ""
    lines.append(f"report = easnb.compare(conn, {other}, {literal(r['model'])}, {data}, model_b={literal(r['model_b'])}{version}, "
                 f"rtol={literal(r['rtol'])}, atol={literal(r['atol'])})")
    lines.append("report  # the verdict first; report.differing, report.latency")
    return "\n".join(lines) + "\n"


def refuse(call: Call, flavour: str) -> EasnbError:
    """Why a load test or comparison has no ``flavour`` code, and what to use instead."""
    return EasnbError(
        f"A {call.kind} is many calls; {flavour} makes one at a time.",
        hint=f"Copy it as easnb code, or use the command line: easnb {call.kind} --help.",
    )
