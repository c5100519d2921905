"""A recorded call as code to paste: easnb, tritonclient (V2 only) or grpcurl.

The token never appears: Python reads ``os.environ["EASNB_TOKEN"]``, the shell
``$EASNB_TOKEN``. Every value that enters the code (names a server or a user gave,
paths, headers, payloads) is a literal made by the language's own quoting: ``literal()``
(built on ``repr``) for Python, ``shlex.quote`` for the shell; never pasted between
quotes. So a model called ``x" + __import__("os").system("id") + "`` stays a string.
"""

from __future__ import annotations

import base64
import json
import keyword
import math
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import perf_calls, stream_code
from .code_literals import TOKEN_HEADER, array_literal, call_headers, connect_line, literal
from .errors import EasnbError

if TYPE_CHECKING:
    from .call_record import Call

_CONTENTS = {
    "BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}
_SURROGATE = re.compile("[\ud800-\udfff]")
_CLIENT_ATTRIBUTES = {"methods", "descriptor", "name"}  # a method with one of these names is reached by methods[...]


def _method(name: str) -> str:
    # ASCII only: Python reads identifiers NFKC-normalised, so client.\ufb01 would call "fi"
    if name.isascii() and name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_") and name not in _CLIENT_ATTRIBUTES:
        return f"client.{name}"
    return f"client.methods[{literal(name)}]"


def easnb(call: Call) -> str:
    """The call with easnb."""
    if call.kind == "generate":
        return stream_code.easnb(call)
    if call.kind in ("load", "compare"):
        return perf_calls.easnb_code(call)
    r = call.request
    lines = ["import os", "", "import numpy as np", "", "import easnb", "", connect_line(call)]
    if call.kind == "metadata":
        version = f", {literal(r['version'])}" if r.get("version") else ""
        return "\n".join([*lines, f"print(conn.model_metadata({literal(r['model'])}{version}))"]) + "\n"
    if call.kind == "infer":
        inputs = ",\n    ".join(
            f"{literal(n)}: easnb.Tensor({array_literal(t['array'], t['datatype'])}, {literal(t['datatype'])})"
            for n, t in r["inputs"].items()
        )
        extra = "".join(f", {key}={literal(r[key])}" for key in ("outputs", "version", "parameters") if r.get(key))
        lines += [f"result = conn.infer({literal(r['model'])}, {{\n    {inputs}\n}}{extra})", "print(result.to_frame())"]
        return "\n".join(lines) + "\n"
    source = f"{literal(str(r['proto']))}, {literal(r['service'])}" if r.get("proto") else literal(r["service"])
    lines.append(f"client = conn.service({source})")
    requests = r["requests"]
    payload = literal(requests) if r.get("client_streaming") else literal(requests[0])
    lines.append(f"answer = {_method(r['method'])}({payload})")
    if r.get("server_streaming"):
        lines.append("for reply in answer:\n    print(reply)")
    else:
        lines.append("print(answer)")
    return "\n".join(lines) + "\n"


def tritonclient(call: Call) -> str:
    """The call with tritonclient's gRPC client (V2 calls only)."""
    if call.kind == "generate":
        return stream_code.tritonclient(call)
    if call.kind not in ("infer", "metadata"):
        raise EasnbError("tritonclient speaks only the V2 API: copy this call as easnb or grpcurl code.")
    r = call.request
    ssl = ", ssl=True" if call.tls else ""
    lines = [
        "import os", "", "import numpy as np", "import tritonclient.grpc as grpcclient", "",
        f"client = grpcclient.InferenceServerClient({literal(call.target)}{ssl})",
        'token = os.environ.get("EASNB_TOKEN")',
        f"headers = {literal(call_headers(call))}",
        "if token:",
        f'    headers["authorization"] = {TOKEN_HEADER}',
    ]
    if call.kind == "metadata":
        version = f", model_version={literal(r['version'])}" if r.get("version") else ""
        return "\n".join([*lines, f"print(client.get_model_metadata({literal(r['model'])}{version}, headers=headers or None))"]) + "\n"
    lines.append("inputs = []")
    for name, t in r["inputs"].items():
        lines += [
            f"x = grpcclient.InferInput({literal(name)}, {literal(list(t['array'].shape))}, {literal(t['datatype'])})",
            f"x.set_data_from_numpy({array_literal(t['array'], t['datatype'])})",
            "inputs.append(x)",
        ]
    outputs = [r["outputs"]] if isinstance(r.get("outputs"), str) else list(r.get("outputs") or [])
    requested = f"[{', '.join(f'grpcclient.InferRequestedOutput({literal(o)})' for o in outputs)}]" if outputs else "None"
    extra = f", model_version={literal(r['version'])}" if r.get("version") else ""
    extra += f", parameters={literal(r['parameters'])}" if r.get("parameters") else ""
    lines += [
        f"result = client.infer({literal(r['model'])}, inputs, outputs={requested}, headers=headers or None{extra})",
        "for output in result.get_response().outputs:",
        "    print(output.name, result.as_numpy(output.name))",
    ]
    return "\n".join(lines) + "\n"


def grpcurl(call: Call) -> str:
    """The call with grpcurl (JSON in, JSON out); every word shell-quoted."""
    from . import protos

    if call.kind in ("load", "compare"):
        raise perf_calls.refuse(call, "grpcurl")
    r = call.request
    if call.kind == "generate":
        raise EasnbError("grpcurl has no .proto for Triton's ModelStreamInfer: copy this generation as easnb or tritonclient code.")
    if call.kind in ("infer", "metadata"):
        target = f"inference.GRPCInferenceService/{'ModelInfer' if call.kind == 'infer' else 'ModelMetadata'}"
        proto = str(protos.folder() / "grpc_predict_v2.proto")
        data = json.dumps(_infer_body(r) if call.kind == "infer" else {"name": r["model"], **({"version": r["version"]} if r.get("version") else {})})
    else:
        target = f'{r["service"]}/{r["method"]}'
        proto = str(r["proto"]) if r.get("proto") else ""
        data = " ".join(json.dumps(q) for q in r["requests"])
    headers = [(name, base64.b64encode(v).decode() if isinstance(v, bytes) else v) for name, v in call_headers(call).items()]
    words_text = "".join([target, data, call.target, proto, *(f"{k}{v}" for k, v in headers)])
    if "\0" in words_text:
        raise EasnbError("A name or value of this call holds a NUL character, which no shell command can carry.",
                         hint="Copy it as easnb code instead.")
    if _SURROGATE.search(words_text):
        raise EasnbError("A name or value of this call holds a lone surrogate, which no shell command can carry as text.",
                         hint="Copy it as easnb code instead.")
    words = ["grpcurl", "-insecure" if call.tls else "-plaintext"]
    if proto:
        path = Path(proto).resolve()
        words += ["-import-path", shlex.quote(str(path.parent)), "-proto", shlex.quote(path.name)]
    for name, value in headers:  # grpcurl reads a -bin header's value as base64
        words += ["-H", shlex.quote(f"{name}: {value}")]
    words.append('-H "authorization: Bearer $EASNB_TOKEN"')
    # "--" ends the flags: a target or method starting with "-" is never read as one
    return " ".join([*words, "-d", shlex.quote(data), "--", shlex.quote(call.target), shlex.quote(target)]) + "\n"


def _infer_body(r: dict[str, Any]) -> dict[str, Any]:
    """A V2 ModelInferRequest as proto3 JSON, with typed contents."""
    body: dict[str, Any] = {"model_name": r["model"], "inputs": [_typed_input(n, t) for n, t in r["inputs"].items()]}
    if r.get("version"):
        body["model_version"] = r["version"]
    if r.get("parameters"):
        body["parameters"] = _parameters(r["parameters"])
    outputs = r.get("outputs")
    if outputs:
        named = outputs.items() if isinstance(outputs, Mapping) else ((o, None) for o in ([outputs] if isinstance(outputs, str) else outputs))
        body["outputs"] = [{"name": o, **({"parameters": _parameters(p)} if p else {})} for o, p in named]
    return body


def _parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """V2 parameters as proto3 JSON ``InferParameter`` values."""
    from google.protobuf import json_format

    from .parameters import from_python

    return {str(k): json_format.MessageToDict(from_python(v), preserving_proto_field_name=True) for k, v in values.items()}


def _typed_input(name: str, saved: dict[str, Any]) -> dict[str, Any]:
    datatype, array = saved["datatype"], saved["array"]
    if datatype not in _CONTENTS:
        raise EasnbError(f"{datatype} has no typed contents in V2, so grpcurl cannot send input {name!r}.")
    flat = array.reshape(-1)
    if datatype == "BYTES":
        values: list[Any] = [base64.b64encode(v if isinstance(v, bytes) else str(v).encode()).decode() for v in flat]
    elif datatype in ("INT64", "UINT64"):
        values = [str(v) for v in flat.tolist()]  # proto3 JSON writes 64-bit integers as strings
    elif datatype in ("FP32", "FP64"):
        values = [v if math.isfinite(v) else ("NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")) for v in flat.tolist()]
    else:
        values = flat.tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "contents": {_CONTENTS[datatype]: values}}
