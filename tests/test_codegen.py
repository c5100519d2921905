"""Copy as code: any name or value (a server's or a user's) stays data in the code easnb writes.

Properties over arbitrary text in every name and value position: each Python snippet parses
and calls nothing but what it should, with exactly the values given; each grpcurl line, run by
a real shell with ``grpcurl`` standing in as a function that prints its arguments, passes
exactly the words expected. A few snippets run for real, in fresh processes, against a recording
server on loopback: it receives exactly the names, values and headers given, and nothing else happens.
"""

from __future__ import annotations

import ast
import base64
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from easnb import codegen, protos
from easnb.demo.models import echo
from easnb.demo.server import SERVER_OPTIONS, V2Service, v2_handler
from easnb.errors import EasnbError
from easnb.history import Call
from easnb.inference import decode_request
from easnb.parameters import to_dict
from easnb.tensors import decode_tensor

from .conftest import Recorder, python_with_tritonclient
from .kitchen import SERVICE, Kitchen

ANY = st.text(st.characters(blacklist_categories=()), max_size=12)  # any code point, lone surrogates too
TEXT = st.text(max_size=12)  # any Unicode a process can be handed: no lone surrogates
SHELL = st.text(st.characters(blacklist_characters="\0"), max_size=12)
HEADER_NAME = st.from_regex(r"x-[a-z0-9_.-]{1,8}", fullmatch=True).filter(lambda k: not k.endswith("-bin"))
HEADER_VALUE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12)
HEADERS = st.dictionaries(HEADER_NAME, HEADER_VALUE, max_size=3) | st.just({"x-key-bin": b"\0\xff'\"\n"})
PARAMETER = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True), TEXT)
INJECTIONS = [
    'x" + str(__import__("pathlib").Path("MARK").touch()) + "',
    "x' + str(__import__('pathlib').Path('MARK').touch()) + '",
    '"""\n__import__("pathlib").Path("MARK").touch()\n"""',
    "\\",
    "a\nb\u2028c\rd",
    "$(touch MARK)`touch MARK`'; touch MARK; '",
]


def infer_call(model: str, names: list[str], version: str, parameters: dict[str, Any], outputs: Any,
               headers: dict[str, Any], target: str = "127.0.0.1:1", text: str = "t") -> Call:
    inputs: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(names):
        if i % 2:
            inputs[name] = {"datatype": "BYTES", "array": np.array([[text.encode("utf-8", "surrogatepass"), b"\0'\""]], dtype=object)}
        else:
            inputs[name] = {"datatype": "FP32", "array": np.array([[1.5, -0.0, math.inf, 7.0]], np.float32)}
    request = {"model": model, "inputs": inputs, "version": version, "parameters": parameters, "outputs": outputs}
    return Call(datetime.now(), "infer", target, False, model, "", "OK", 1.0, request, headers)


def service_call(service: str, method: str, payload: dict[str, Any], headers: dict[str, Any],
                 proto: str | None = None, target: str = "127.0.0.1:1", streaming: bool = False) -> Call:
    request = {"service": service, "method": method, "proto": proto, "requests": [payload, payload] if streaming else [payload],
               "client_streaming": streaming, "server_streaming": streaming}
    return Call(datetime.now(), "service", target, False, f"/{service}/{method}", "", "OK", 1.0, request, headers)


# -- Python: parses, calls only what it should, with exactly the values given -------------------------


ALLOWED = {
    "easnb.connect", "os.environ.get", "conn.infer", "easnb.Tensor", "np.array", "print", "result.to_frame", "float",
    "conn.service", "grpcclient.InferenceServerClient", "grpcclient.InferInput", "x.set_data_from_numpy",
    "inputs.append", "grpcclient.InferRequestedOutput", "client.infer", "result.get_response", "result.as_numpy",
    "conn.model_metadata", "client.get_model_metadata",
}


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Subscript):
        return f"{dotted(node.value)}[]"
    if isinstance(node, ast.Call):
        return f"{dotted(node.func)}()"
    return type(node).__name__


def calls(code: str, method: str | None = None) -> dict[str, list[ast.Call]]:
    """The snippet's calls by name, after checking it calls, imports and defines nothing else."""
    tree = ast.parse(code)
    found: dict[str, list[ast.Call]] = {}
    for node in ast.walk(tree):
        assert not isinstance(node, (ast.Lambda, ast.NamedExpr, ast.FunctionDef, ast.ClassDef, ast.JoinedStr)) or (
            isinstance(node, ast.JoinedStr) and ast.unparse(node) == "f'Bearer {token}'"
        ), ast.unparse(node)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            assert [a.name for a in node.names][0] in ("os", "numpy", "easnb", "tritonclient.grpc"), ast.unparse(node)
        if isinstance(node, ast.Call):
            name = dotted(node.func)
            if name.endswith(").reshape"):
                name = "reshape"
            ok = name in ALLOWED or name == "reshape" or (method is not None and name in (f"client.{method}", "client.methods[]"))
            assert ok, name
            found.setdefault(name, []).append(node)
    return found


def value(node: ast.AST) -> Any:
    """Evaluate an expression already checked to call only np.array, float and reshape."""
    return eval(compile(ast.Expression(node), "<code>", "eval"), {"__builtins__": {}, "float": float, "np": np, "object": object})  # noqa: S307


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b) and type(a) is type(b)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=ANY, names=st.lists(ANY, min_size=1, max_size=3, unique=True), version=ANY,
       parameters=st.dictionaries(ANY, PARAMETER, max_size=3), outputs=st.lists(ANY, max_size=2) | st.dictionaries(ANY, st.dictionaries(ANY, PARAMETER, max_size=1), max_size=2),
       headers=HEADERS, text=ANY)
@example(model=INJECTIONS[0], names=INJECTIONS[1:4], version=INJECTIONS[4], parameters={INJECTIONS[5]: INJECTIONS[0]},
         outputs=[INJECTIONS[2]], headers={"x-a": "\" + x + \""}, text=INJECTIONS[1])
def test_infer_code_keeps_every_value_a_literal(model, names, version, parameters, outputs, headers, text) -> None:  # type: ignore[no-untyped-def]
    call = infer_call(model, names, version, parameters, outputs, headers, text=text)
    found = calls(codegen.easnb(call))
    (infer,) = found["conn.infer"]
    assert value(infer.args[0]) == model
    keys = [value(k) for k in infer.args[1].keys]
    assert keys == names
    for tensor, name in zip(found["easnb.Tensor"], names):
        saved = call.request["inputs"][name]
        assert value(tensor.args[1]) == saved["datatype"]
        array = value(tensor.args[0])
        assert array.shape == saved["array"].shape and same(array.tolist(), saved["array"].tolist())
    kwargs = {k.arg: value(k.value) for k in infer.keywords}
    expected = {k: v for k, v in (("outputs", outputs), ("version", version), ("parameters", parameters)) if v}
    assert same(kwargs, expected)
    (connect,) = found["easnb.connect"]
    assert value(connect.args[0]) == "127.0.0.1:1"
    assert same({k.arg: value(k.value) for k in connect.keywords if k.arg == "headers"}, {"headers": headers} if headers else {})

    found = calls(codegen.tritonclient(call))
    (infer,) = found["client.infer"]
    assert value(infer.args[0]) == model
    assert [value(x.args[0]) for x in found["grpcclient.InferInput"]] == names
    assert [value(x.args[0]) for x in found.get("grpcclient.InferRequestedOutput", [])] == list(outputs)
    kwargs = {k.arg: k.value for k in infer.keywords}
    assert same(value(kwargs["parameters"]) if "parameters" in kwargs else {}, parameters)
    assert (value(kwargs["model_version"]) if "model_version" in kwargs else "") == version


@settings(max_examples=150, deadline=None)
@given(service=ANY, method=ANY, proto=st.none() | ANY, payload=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY, inner, max_size=3), max_leaves=8,
), headers=HEADERS, streaming=st.booleans())
@example(service="a.B", method="\ufb01", proto=None, payload=None, headers={}, streaming=False)  # NFKC: would call "fi"
@example(service="a.B", method="methods", proto=None, payload=True, headers={}, streaming=False)
@example(service="a.B", method="import", proto=None, payload=None, headers={}, streaming=True)
def test_service_code_keeps_every_value_a_literal(service, method, proto, payload, headers, streaming) -> None:  # type: ignore[no-untyped-def]
    call = service_call(service, method, {"x": payload}, headers, proto=proto, streaming=streaming)
    code = codegen.easnb(call)
    found = calls(code, method)
    (client,) = found["conn.service"]
    assert [value(a) for a in client.args] == ([proto, service] if proto else [service])
    (invoke,) = [n for name, nodes in found.items() if name.startswith("client.") for n in nodes]
    if isinstance(invoke.func, ast.Subscript):
        assert value(invoke.func.slice) == method
    else:
        assert invoke.func.attr == method  # type: ignore[attr-defined]
    sent = value(invoke.args[0])
    assert same(sent, [{"x": payload}] * 2 if streaming else {"x": payload})


@settings(max_examples=100, deadline=None)
@given(model=ANY, version=ANY, headers=HEADERS)
def test_metadata_code_keeps_every_value_a_literal(model: str, version: str, headers: dict[str, Any]) -> None:
    call = Call(datetime.now(), "metadata", "127.0.0.1:1", False, model, "", "OK", 1.0, {"model": model, "version": version}, headers)
    (asked,) = calls(codegen.easnb(call))["conn.model_metadata"]
    assert [value(a) for a in asked.args] == ([model, version] if version else [model])
    (asked,) = calls(codegen.tritonclient(call))["client.get_model_metadata"]
    assert value(asked.args[0]) == model
    assert [value(k.value) for k in asked.keywords if k.arg == "model_version"] == ([version] if version else [])


def test_json_true_and_null_become_python() -> None:
    code = codegen.easnb(service_call("a.B", "C", {"on": True, "off": False, "none": None}, {}))
    assert '{"on": True, "off": False, "none": None}' in code


# -- the shell: a real shell runs the line, grpcurl is a function printing its arguments ---------------


def shell_words(line: str, cwd: Path) -> list[str]:
    script = "grpcurl() { printf '%s\\0' \"$@\"; }\n" + line
    run = subprocess.run(["bash", "-c", script], capture_output=True, cwd=cwd, env={"EASNB_TOKEN": "tok", "PATH": os.environ["PATH"]}, timeout=10)
    assert run.returncode == 0, run.stderr
    return run.stdout.decode().split("\0")[:-1]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(service=SHELL, method=SHELL, proto=st.none() | SHELL.filter(bool), payload=SHELL, headers=HEADERS,
       model=SHELL, name=SHELL, version=SHELL)
@example(service=INJECTIONS[5], method="-plaintext", proto="$(touch MARK).proto", payload=INJECTIONS[5],
         headers={"x-a": "'; touch MARK; '"}, model=INJECTIONS[5], name="`touch MARK`", version="$HOME")
@example(service="a", method="b", proto=None, payload="", headers={}, model="", name="", version="\ud800")  # JSON's "\ud800"
def test_grpcurl_lines_pass_exactly_the_words_given(tmp_path: Path, service, method, proto, payload, headers, model, name, version) -> None:  # type: ignore[no-untyped-def]
    header_words = [w for k, v in headers.items() for w in ("-H", f"{k}: {v if isinstance(v, str) else base64.b64encode(v).decode()}")]
    call = service_call(service, method, {"x": payload}, headers, proto=proto)
    if any(0xD800 <= ord(c) < 0xE000 for c in service + method + (proto or "")):  # no process can be handed one
        with pytest.raises(EasnbError, match="lone surrogate"):
            codegen.grpcurl(call)
        return
    words = shell_words(codegen.grpcurl(call), tmp_path)
    assert words[-3:] == ["--", "127.0.0.1:1", f"{service}/{method}"]
    assert json.loads(words[words.index("-d") + 1]) == {"x": payload}
    assert words[: words.index("-d")] == ["-plaintext", *(["-import-path", str(Path(proto).resolve().parent), "-proto", Path(proto).name] if proto else []), *header_words, "-H", "authorization: Bearer tok"]
    call = infer_call(model, [name], version, {name: version}, [name], headers)
    if any(0xD800 <= ord(c) < 0xE000 for c in version):  # a lone surrogate: no V2 string parameter can hold it
        with pytest.raises(EasnbError, match="lone surrogate"):
            codegen.grpcurl(call)
        call = infer_call(model, [name], version, {}, [name], headers)
    words = shell_words(codegen.grpcurl(call), tmp_path)
    body = json.loads(words[words.index("-d") + 1])
    assert body["model_name"] == model and body["inputs"][0]["name"] == name and body["outputs"] == [{"name": name}]
    assert body.get("model_version", "") == version
    assert body.get("parameters") == ({name: {"string_param": version}} if call.request["parameters"] else None)
    assert words[-3:] == ["--", "127.0.0.1:1", "inference.GRPCInferenceService/ModelInfer"]
    assert words[1:5] == ["-import-path", str(protos.folder()), "-proto", "grpc_predict_v2.proto"]
    metadata = Call(datetime.now(), "metadata", "127.0.0.1:1", False, model, "", "OK", 1.0, {"model": model, "version": version}, headers)
    words = shell_words(codegen.grpcurl(metadata), tmp_path)
    assert json.loads(words[words.index("-d") + 1]) == {"name": model, **({"version": version} if version else {})}
    assert words[-1] == "inference.GRPCInferenceService/ModelMetadata"
    assert not list(tmp_path.iterdir()), "the shell ran something"


def test_a_nul_cannot_reach_the_shell() -> None:
    with pytest.raises(EasnbError, match="NUL"):
        codegen.grpcurl(service_call("a\0b", "C", {}, {}))


# -- for real: fresh processes against a recording server ----------------------------------------------


MODELS = [INJECTIONS[0], INJECTIONS[2] + "\u00e9\U0001f600", "\\"]


class RecordingV2(V2Service):
    """The demo's V2 service with the echo model under hostile names; keeps what each ModelInfer asked."""

    def __init__(self) -> None:
        super().__init__({name: echo() for name in MODELS})
        self.received: list[dict[str, Any]] = []

    def model_infer(self, data: bytes) -> bytes:
        request, raws = decode_request(data)
        arrays = {
            t.name: decode_tensor(t.name, t.datatype, list(t.shape), raws[i] if raws else None, t.contents, copy=True).tolist()
            for i, t in enumerate(request.inputs)
        }
        self.received.append({"model": request.model_name, "version": request.model_version, "inputs": arrays,
                              "outputs": [o.name for o in request.outputs], "parameters": to_dict(request.parameters)})
        return super().model_infer(data)


@pytest.fixture(scope="module")
def recording() -> Iterator[tuple[str, RecordingV2, Recorder, Kitchen]]:
    from grpc_reflection.v1alpha import reflection

    service, recorder, kitchen = RecordingV2(), Recorder(), Kitchen(reflection=False, health=False)
    kitchen.stop()
    server = grpc.server(futures.ThreadPoolExecutor(8), options=SERVER_OPTIONS,
                         handlers=[v2_handler(service), kitchen._handler()], interceptors=[recorder])
    reflection.enable_server_reflection([SERVICE], server, pool=kitchen.pool)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", service, recorder, kitchen
    server.stop(None).wait()


def run_fresh(code: str, cwd: Path, python: str = sys.executable) -> str:
    env = {**os.environ, "EASNB_TOKEN": "tok-codegen-1234"}
    run = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, timeout=60, cwd=cwd)
    assert run.returncode == 0, run.stderr
    return run.stdout


def sent_headers(recorder: Recorder) -> dict[str, Any]:
    method, metadata = recorder.calls[-1]
    return {k: v for k, v in metadata.items() if k.startswith("x-")} | {"authorization": metadata.get("authorization")}


HOSTILE_HEADERS = {"x-quote": "\" + str(__import__('os').getpid()) + \"", "x-key-bin": b"\0\xff'\"\n"}


@pytest.mark.parametrize("flavour", ["easnb", "tritonclient"])
@pytest.mark.parametrize("model", MODELS)
def test_copied_infer_code_sends_exactly_what_was_given(recording, tmp_path: Path, flavour: str, model: str) -> None:  # type: ignore[no-untyped-def]
    target, service, recorder, _ = recording
    names = [INJECTIONS[1], INJECTIONS[4]]
    parameters = {INJECTIONS[0]: INJECTIONS[3], "on": True, "n": -5, "x": 0.25}
    call = infer_call(model, names, "1", parameters, [names[1]], HOSTILE_HEADERS, target=target, text=INJECTIONS[2])
    python = sys.executable if flavour == "easnb" else python_with_tritonclient()
    run_fresh(getattr(codegen, flavour)(call), tmp_path, python)
    got = service.received[-1]
    assert got["model"] == model and got["version"] == "1" and list(got["inputs"]) == names
    assert got["outputs"] == [names[1]] and got["parameters"] == dict(sorted(parameters.items()))
    assert got["inputs"][names[0]] == [[1.5, -0.0, math.inf, 7.0]]
    assert got["inputs"][names[1]] == [[INJECTIONS[2].encode(), b"\0'\""]]
    assert sent_headers(recorder) == {**HOSTILE_HEADERS, "authorization": "Bearer tok-codegen-1234"}
    assert not list(tmp_path.iterdir()), "the code did something else"


def test_copied_service_code_sends_exactly_what_was_given(recording, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target, _, recorder, kitchen = recording
    payload = {"f_bool": True, "f_double": None, "f_string": INJECTIONS[0] + INJECTIONS[4], "tags": INJECTIONS[1:4],
               "counts": {INJECTIONS[5]: "9007199254740993"}, "inner": {"label": INJECTIONS[2], "values": [1, -2]}}
    for proto in (None, str(Path(__file__).parent / "protos" / "kitchen.proto")):
        call = service_call(SERVICE, "Echo", payload, HOSTILE_HEADERS, proto=proto, target=target)
        run_fresh(codegen.easnb(call), tmp_path)
        assert kitchen.received[-1] == {k: v for k, v in payload.items() if v is not None}
        assert sent_headers(recorder) == {**HOSTILE_HEADERS, "authorization": "Bearer tok-codegen-1234"}
    assert not list(tmp_path.iterdir())


# -- load tests and comparisons (History's "load" and "compare" calls) --------------------------------


def perf_call(kind: str, model: str, names: list[str], frame: str | None, prompt: str | None, endpoint_b: str) -> Call:
    if frame is not None:
        data: dict[str, Any] = {"frame": frame, "rows": 3}
    elif prompt is not None:
        data = {"prompt": prompt}
    else:
        data = {"inputs": {n: {"datatype": "BYTES" if i % 2 else "FP32",
                               "array": np.array([[b"a'\""]], object) if i % 2 else np.array([[1.5, math.nan]], np.float32)}
                           for i, n in enumerate(names)}}
    if kind == "load":
        request = {"model": model, "mode": "rate", "levels": [1.0, math.nan], "seconds": math.inf, "warmup": 0.5, **data}
    else:
        request = {"model": model, "model_b": model + "b", "version_b": model, "endpoint_b": endpoint_b,
                   "rtol": math.nan, "atol": 1e-6, **data}
    return Call(datetime.now(), kind, "127.0.0.1:1", False, model, "", "OK", 1.0, request, {})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["load", "compare"]), model=ANY, names=st.lists(ANY, min_size=1, max_size=3, unique=True),
       frame=st.none() | ANY, prompt=st.none() | ANY, endpoint_b=ANY)
@example(kind="load", model="m", names=['x": __import__("os").system("id"), "y'], frame=None, prompt=None, endpoint_b="")
@example(kind="compare", model="m", names=["x"], frame="df\n__import__('os').system('id')", prompt=None, endpoint_b="")
@example(kind="compare", model="m", names=["x"], frame="os.system('id')", prompt=None, endpoint_b="")
def test_load_and_compare_code_keeps_every_value_a_literal(kind, model, names, frame, prompt, endpoint_b) -> None:  # type: ignore[no-untyped-def]
    """Input names come from a server's metadata (the Example), the DataFrame's name from a text field."""
    call = perf_call(kind, model, names, frame, prompt, endpoint_b)
    code = codegen.easnb(call)
    tree = ast.parse(code)
    allowed = {"easnb.connect", "os.environ.get", "easnb.Tensor", "np.array", "float", "reshape", "conn.load_test",
               "easnb.compare", "globals"}
    for node in ast.walk(tree):
        assert not isinstance(node, (ast.Lambda, ast.NamedExpr, ast.FunctionDef, ast.ClassDef, ast.JoinedStr)), ast.unparse(node)
        if isinstance(node, ast.Call):
            name = dotted(node.func)
            assert (name if not name.endswith(").reshape") else "reshape") in allowed, name
    names_in_code = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert names_in_code <= {"os", "np", "easnb", "conn", "other", "inputs", "prompt", "report", "float", "object", "globals",
                             *([frame] if frame is not None else [])}, names_in_code
    report = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "report")  # type: ignore[attr-defined]
    args = report.value.args  # type: ignore[attr-defined]
    assert value(args[0] if kind == "load" else args[2]) == model
    if frame is None and prompt is None:
        assigned = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "inputs")  # type: ignore[attr-defined]
        assert [value(k) for k in assigned.value.keys] == names  # type: ignore[attr-defined]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=ANY, prompt=ANY, version=ANY, sampling=st.dictionaries(ANY, PARAMETER | st.none() | st.lists(PARAMETER, max_size=2), max_size=3),
       names=st.lists(ANY, min_size=1, max_size=2, unique=True), headers=HEADERS)
@example(model='x" + str(__import__("os").system("id")) + "', prompt='"""\n__import__("os")\n"""', version="\\",
         sampling={"a) or __import__('os').system('id') or (": 1}, names=["text_input"], headers={})
def test_generation_code_keeps_every_value_a_literal(model, prompt, version, sampling, names, headers) -> None:  # type: ignore[no-untyped-def]
    """The Generate tab's calls: model, prompt, sampling keys and values, input names, as easnb and tritonclient code."""
    inputs = {n: {"datatype": "BYTES", "array": np.array([prompt.encode("utf-8", "surrogatepass")], object)} for n in names}
    request = {"model": model, "prompt": prompt, "sampling": sampling, "version": version, "inputs": inputs}
    call = Call(datetime.now(), "generate", "127.0.0.1:1", False, model, "", "OK", 1.0, request, headers)
    allowed = ALLOWED | {"conn.generate", "queue.Queue", "client.start_stream", "responses.put", "client.async_stream_infer",
                         "responses.get", "b''.join", "text.reshape", "join().decode", "client.stop_stream", "Constant.join"}
    for flavour in (codegen.easnb, codegen.tritonclient):
        code = flavour(call)
        tree = ast.parse(code)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = dotted(node.func)
                assert name in allowed or name.endswith((").decode", ".join", ").reshape")), name
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and dotted(node.func) in ("conn.generate", "client.async_stream_infer"):
                assert value(node.args[0]) == model
                if dotted(node.func) == "conn.generate":
                    assert value(node.args[1]) == prompt
                    given_sampling = {k: v for kw in node.keywords if kw.arg is None for k, v in value(kw.value).items()}
                    assert same(given_sampling, sampling)
            if isinstance(node, ast.Call) and dotted(node.func) == "grpcclient.InferInput":
                assert value(node.args[0]) in names


def test_numbers_repr_cannot_print_are_still_literals() -> None:
    huge = 7**20000  # beyond the 4300 digits repr() writes
    for value in (huge, -huge, [huge], {"x": huge}):
        assert eval(codegen.literal(value), {"__builtins__": {}}) == value  # noqa: S307
