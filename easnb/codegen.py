"""A recorded call as code to paste: easnb, tritonclient (V2 only) or grpcurl.

The token never appears: Python reads ``os.environ["EASNB_TOKEN"]``, the shell
``$EASNB_TOKEN``.
"""

from __future__ import annotations

import base64
import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import EasnbError

if TYPE_CHECKING:
    from .history import Call

_NUMPY = {
    "BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64", "INT8": "int8",
    "INT16": "int16", "INT32": "int32", "INT64": "int64", "FP16": "float16", "FP32": "float32", "FP64": "float64",
    "BF16": "float32",
}
_CONTENTS = {
    "BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def _array_literal(array: np.ndarray, datatype: str) -> str:
    if datatype == "BYTES":
        items = [v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1)]
        return f"np.array({items!r}, dtype=object).reshape({list(array.shape)})"
    return f"np.array({array.tolist()!r}, dtype=np.{_NUMPY[datatype]})"


def _connect_line(call: Call) -> str:
    scheme = "https://" if call.tls else ""
    return f'conn = easnb.connect("{scheme}{call.target}", token=os.environ.get("EASNB_TOKEN"))'


def easnb(call: Call) -> str:
    """The call with easnb."""
    r = call.request
    lines = ["import os", "", "import numpy as np", "", "import easnb", "", _connect_line(call)]
    if call.kind == "metadata":
        version = f", {r['version']!r}" if r.get("version") else ""
        return "\n".join([*lines, f"print(conn.model_metadata({r['model']!r}{version}))"]) + "\n"
    if call.kind == "infer":
        inputs = ",\n    ".join(
            f'"{n}": easnb.Tensor({_array_literal(t["array"], t["datatype"])}, "{t["datatype"]}")' for n, t in r["inputs"].items()
        )
        extra = "".join(
            f", {key}={r[key]!r}" for key in ("outputs", "version", "parameters") if r.get(key)
        )
        lines += [f'result = conn.infer("{r["model"]}", {{\n    {inputs}\n}}{extra})', "print(result.to_frame())"]
        return "\n".join(lines) + "\n"
    source = f'"{r["proto"]}", "{r["service"]}"' if r.get("proto") else f'"{r["service"]}"'
    lines.append(f"client = conn.service({source})")
    requests = r["requests"]
    method = f'client.{r["method"]}'
    if r.get("client_streaming"):
        lines.append(f"answer = {method}({json.dumps(requests)})")
    else:
        lines.append(f"answer = {method}({json.dumps(requests[0])})")
    if r.get("server_streaming"):
        lines.append("for reply in answer:\n    print(reply)")
    else:
        lines.append("print(answer)")
    return "\n".join(lines) + "\n"


def tritonclient(call: Call) -> str:
    """The call with tritonclient's gRPC client (V2 calls only)."""
    if call.kind not in ("infer", "metadata"):
        raise EasnbError("tritonclient speaks only the V2 API: copy this call as easnb or grpcurl code.")
    r = call.request
    ssl = ", ssl=True" if call.tls else ""
    lines = [
        "import os", "", "import numpy as np", "import tritonclient.grpc as grpcclient", "",
        f'client = grpcclient.InferenceServerClient("{call.target}"{ssl})',
        'token = os.environ.get("EASNB_TOKEN")',
        'headers = {"authorization": f"Bearer {token}"} if token else None',
    ]
    if call.kind == "metadata":
        version = f", model_version={r['version']!r}" if r.get("version") else ""
        return "\n".join([*lines, f"print(client.get_model_metadata({r['model']!r}{version}, headers=headers))"]) + "\n"
    lines.append("inputs = []")
    for name, t in r["inputs"].items():
        lines += [
            f'x = grpcclient.InferInput("{name}", {list(t["array"].shape)}, "{t["datatype"]}")',
            f"x.set_data_from_numpy({_array_literal(t['array'], t['datatype'])})",
            "inputs.append(x)",
        ]
    outputs = list(r.get("outputs") or [])
    requested = f"[{', '.join(f'grpcclient.InferRequestedOutput({o!r})' for o in outputs)}]" if outputs else "None"
    extra = f", model_version={r['version']!r}" if r.get("version") else ""
    extra += f", parameters={r['parameters']!r}" if r.get("parameters") else ""
    lines += [
        f'result = client.infer("{r["model"]}", inputs, outputs={requested}, headers=headers{extra})',
        "for output in result.get_response().outputs:",
        "    print(output.name, result.as_numpy(output.name))",
    ]
    return "\n".join(lines) + "\n"


def grpcurl(call: Call) -> str:
    """The call with grpcurl (JSON in, JSON out)."""
    from . import protos

    r = call.request
    if call.kind == "metadata":
        body: dict[str, Any] = {"name": r["model"], **({"version": r["version"]} if r.get("version") else {})}
        target, data = "inference.GRPCInferenceService/ModelMetadata", json.dumps(body)
        proto: tuple[str, str] | None = (str(protos.folder()), "grpc_predict_v2.proto")
    elif call.kind == "infer":
        body = {"model_name": r["model"], "inputs": [_typed_input(n, t) for n, t in r["inputs"].items()]}
        if r.get("version"):
            body["model_version"] = r["version"]
        if r.get("outputs"):
            body["outputs"] = [{"name": o} for o in r["outputs"]]
        target = "inference.GRPCInferenceService/ModelInfer"
        proto = (str(protos.folder()), "grpc_predict_v2.proto")
        data = json.dumps(body)
    else:
        target = f'{r["service"]}/{r["method"]}'
        proto = (str(Path(r["proto"]).resolve().parent), Path(r["proto"]).name) if r.get("proto") else None
        data = " ".join(json.dumps(q) for q in r["requests"])
    words = ["grpcurl", "-insecure" if call.tls else "-plaintext"]
    if proto:
        words += ["-import-path", shlex.quote(proto[0]), "-proto", shlex.quote(proto[1])]
    auth = '-H "authorization: Bearer $EASNB_TOKEN"'
    return " ".join([*words, auth, "-d", shlex.quote(data), shlex.quote(call.target), target]) + "\n"


def _typed_input(name: str, saved: dict[str, Any]) -> dict[str, Any]:
    datatype, array = saved["datatype"], saved["array"]
    if datatype not in _CONTENTS:
        raise EasnbError(f"{datatype} has no typed contents in V2, so grpcurl cannot send input {name!r}.")
    flat = array.reshape(-1)
    if datatype == "BYTES":
        values: list[Any] = [base64.b64encode(v if isinstance(v, bytes) else str(v).encode()).decode() for v in flat]
    elif datatype in ("INT64", "UINT64"):
        values = [str(v) for v in flat.tolist()]  # proto3 JSON writes 64-bit integers as strings
    else:
        values = flat.tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "contents": {_CONTENTS[datatype]: values}}

