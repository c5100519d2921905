"""The notebook workbench driven from Python: it follows the widget, discovers models and services,
keeps a history, copies calls as code, shows exact results, and diagnoses connections."""

from __future__ import annotations

import json
import os
from html import unescape
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import easnb
from easnb.demo import DemoServer
from easnb.demo.server import V2Service, greeter_handler, v2_handler
from easnb.display import is_probabilities, probability_bars
from easnb.inspectors import InferInspector, ModelInspector, example_text
from easnb.workbench import Workbench
from easnb.results import InferResult
from easnb.service_inspector import ServiceInspector

from .conftest import TOKEN, python_with_tritonclient
from .kitchen import EVERYTHING, Kitchen
from .netparts import serve
from .seedparts import seed_behind_gateway  # noqa: F401 - a fixture
from .test_widgets import all_state, click_connect

pytest.importorskip("grpc_reflection", reason="the proto extra (grpcio-reflection) is not installed")


def titles(bench: Workbench) -> list[str]:
    return [bench.tabs.get_title(i) for i in range(len(bench.tabs.children))]


# -- following the widget ---------------------------------------------------------------------


def test_the_readme_pairing_survives_run_all_and_reconnects(demo: DemoServer) -> None:
    widget = easnb.ConnectionWidget(endpoint=demo.endpoint)
    early = easnb.inspect(widget.connection)  # Run All before Connect: widget.connection is None
    assert "pass the widget itself" in early.status.value.lower()
    bench = easnb.inspect(widget)
    assert "press Connect" in bench.status.value and not bench.tabs.children
    click_connect(widget, TOKEN)
    assert titles(bench) == ["Server", "Model", "Infer", "Generate", "Load", "Compare", "Service", "History"]
    kept = widget.connection
    for _ in range(2):  # Connect again, twice: every tab still works
        click_connect(widget, "")
        server, model, infer, _generate, _, _, service, _ = bench.tabs.children
        server.run(wait=True)
        assert "easnb-demo" in server.output.value
        model.model_field.value = "iris"
        model.wait(10)
        assert "features" in model.output.value
        infer.model_field.value = "iris"
        infer.fill_example()
        infer.run(wait=True)
        assert bench.result is not None and bench.result["label"].shape == (1,)
        service.inspector.controls["name"].value = "again"
        service.inspector.call(wait=True)
        assert service.inspector.replies == [{"message": "Hello, again!"}]
    with pytest.raises(easnb.EasnbError) as info:
        kept.live()  # the variable the user kept was replaced by the widget
    assert "widget connected again" in info.value.message and "widget.connection" in info.value.hint
    assert [c.kind for c in bench.history] == ["metadata", "infer", "service"] * 2  # the Model tab's calls too
    assert TOKEN not in all_state(bench)
    assert bench.builds == 3 and "(#3)" in bench.status.value  # built on Connect, and again on each reconnect


def test_inspectors_take_the_widget_and_use_its_current_connection(demo: DemoServer) -> None:
    widget = easnb.ConnectionWidget(endpoint=demo.endpoint, token=TOKEN)
    widget.connect(wait=True)
    form = InferInspector(widget, "iris")
    click_connect(widget)
    form.fill_example()
    form.run(wait=True)
    assert form.result is not None and "Error" not in form.output.value


# -- model discovery ---------------------------------------------------------------------------


def test_models_come_from_the_index_or_from_use(demo: DemoServer) -> None:
    with easnb.connect(demo.endpoint, token=TOKEN) as conn:
        assert {m.name for m in conn.models()} >= {"iris", "add_sub", "text", "echo"}
        assert all(m.state == "READY" for m in conn.models())
        assert "iris" in ModelInspector(conn).model_field.options
    server, port = serve([v2_handler(V2Service(), index=False)])  # a KServe-like server: no index
    try:
        with easnb.connect(f"127.0.0.1:{port}") as conn:
            with pytest.raises(easnb.UnimplementedError, match="no model repository index"):
                conn.models()
            assert ModelInspector(conn).model_field.options == ()  # no demo names on another server
            conn.model_metadata("text")
            assert ModelInspector(conn).model_field.options == ("text",)
    finally:
        server.stop(None)


# -- the infer form ----------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["iris", "add_sub", "text", "echo"])
def test_example_fills_a_valid_sample(conn: easnb.Connection, model: str) -> None:
    form = InferInspector(conn)
    form.model_field.value = model  # picking a model loads its inputs, no button needed
    if not form.boxes:
        return  # echo declares no inputs
    form.fill_example()
    assert set(form.boxes) == set(example_text(conn.model_metadata(model)))
    form.run(wait=True)
    assert form.result is not None, form.output.value


def test_options_version_parameters_outputs_and_typed(conn: easnb.Connection) -> None:
    form = InferInspector(conn, "iris")
    form.fill_example()
    form.version_field.value = "1"
    form.outputs_field.value = '["label"]'
    form.parameters_field.value = '{"note": "x"}'
    form.raw_field.value = False
    form.run(wait=True)
    assert form.result is not None and list(form.result) == ["label"], form.output.value
    form.parameters_field.value = "{bad"
    form.run(wait=True)
    assert "not JSON" in form.output.value


def test_probability_bars_and_latency_percentiles(conn: easnb.Connection) -> None:
    form = InferInspector(conn, "iris")
    form.fill_example()
    for _ in range(3):
        form.run(wait=True)
    assert "easnb-bars" in form.output.value and "probabilities" in form.output.value
    assert "p50" in form.latency.value and "<svg" in form.latency.value
    assert set(form.history.percentiles()) == {"p50", "p90", "p99"}
    assert is_probabilities(np.array([[0.2, 0.8], [1.0, 0.0]], np.float32))
    assert not is_probabilities(np.array([[2.0, 3.0]])) and not is_probabilities(np.array([0.5, 0.5]))
    assert probability_bars("x", np.array([[1.0, 2.0]])) == ""


# -- history, replay, copy as code -------------------------------------------------------------


def run_fresh(code: str, env_token: str, cwd: Path, python: str = sys.executable) -> str:
    env = {**os.environ, "EASNB_TOKEN": env_token}
    run = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, timeout=60, cwd=cwd)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_history_copies_calls_as_code_that_gives_the_same_answer(demo: DemoServer, tmp_path: Path) -> None:
    widget = easnb.ConnectionWidget(endpoint=demo.endpoint, token=TOKEN)
    widget.connect(wait=True)
    bench = easnb.inspect(widget)
    form = bench.infer
    form.model_field.value = "iris"
    form.boxes["features"].value = "[[6.7, 3.0, 5.2, 2.3]]"
    form.run(wait=True)
    history = bench.history
    view = bench.tabs.children[-1]
    view.entry.value = 0
    codes = {}
    for flavour in ("easnb", "tritonclient", "grpcurl"):
        view.flavour.value = flavour
        codes[flavour] = view.show_code()
        assert TOKEN not in codes[flavour]
    assert "$EASNB_TOKEN" in codes["grpcurl"] and 'os.environ.get("EASNB_TOKEN")' in codes["easnb"]
    assert "virginica" in run_fresh(codes["easnb"], TOKEN, tmp_path)
    assert "virginica" in run_fresh(codes["tritonclient"], TOKEN, tmp_path, python_with_tritonclient())
    replayed = history.replay(0, widget.connection)
    assert replayed["label"].tolist() == [b"virginica"] and len(history) == 2
    frame = history.to_frame()
    assert frame["call"].tolist() == ["iris", "iris"] and (frame["status"] == "OK").all()
    assert "features FP32 [1, 4]" in frame["inputs"][0]
    service = bench.service.inspector
    service.controls["name"].value = "code"
    service.call(wait=True)
    code = history.code(2, "easnb")
    assert "Hello, code!" in run_fresh(code, TOKEN, tmp_path)
    with pytest.raises(easnb.EasnbError, match="V2"):
        history.code(2, "tritonclient")


def test_failed_calls_are_kept_with_their_status(conn: easnb.Connection) -> None:
    form = InferInspector(conn, "add_sub")
    form.boxes["INPUT0"].value = "[1, 2]"
    form.boxes["INPUT1"].value = "[1, 2]"
    form.run(wait=True)
    assert form.history[0].status == "InvalidArgumentError (INVALID_ARGUMENT)"
    assert "InvalidArgumentError" in form.history._repr_html_()


# -- exact views -------------------------------------------------------------------------------


def test_to_dict_and_to_json_are_exact() -> None:
    big = np.array([np.iinfo(np.int64).max, np.iinfo(np.int64).min], np.int64)
    result = InferResult(
        "m", "2", "req-9",
        {"i": big, "u": np.array([np.iinfo(np.uint64).max], np.uint64), "t": np.array([b"caf\xc3\xa9", b"x"], dtype=object),
         "b": np.array([b"\xff"], dtype=object), "h": np.array([0.5, np.nan, -np.inf], np.float16)},
        {"i": "INT64", "u": "UINT64", "t": "BYTES", "b": "BYTES", "h": "FP16"},
        {"p": 1}, {"i": {"unit": "count"}},
    )
    back = json.loads(result.to_json())
    by_name = {o["name"]: o for o in back["outputs"]}
    assert by_name["i"]["data"] == big.tolist() and by_name["u"]["data"] == [2**64 - 1]
    assert by_name["t"]["data"] == ["caf\u00e9", "x"] and by_name["b"] == {**by_name["b"], "encoding": "base64", "data": ["/w=="]}
    assert by_name["h"]["data"] == [0.5, "NaN", "-Infinity"]
    assert back["id"] == "req-9" and back["parameters"] == {"p": 1} and by_name["i"]["parameters"] == {"unit": "count"}
    assert json.loads(result.to_json(bytes_as="base64"))["outputs"][2]["data"] == ["Y2Fmw6k=", "eA=="]
    assert "req-9" in result._repr_html_() and "p=1" in result._repr_html_()


# -- any service in the workbench --------------------------------------------------------------


def test_every_kitchen_method_through_the_form() -> None:
    kitchen = Kitchen()
    try:
        with easnb.connect(kitchen.endpoint) as conn:
            bench = easnb.inspect(conn)
            assert titles(bench) == ["Service", "History"]
            form: ServiceInspector = bench.service.inspector
            assert form.service == "kitchen.Kitchen"
            controls = form.controls
            kinds = {name: type(c).__name__ for name, c in controls.items()}
            assert kinds["f_int64"] == "Text" and kinds["f_int32"] == "IntText" and kinds["f_bool"] == "Checkbox"
            assert kinds["colour"] == "Dropdown" and kinds["f_double"] == "FloatText" and kinds["counts"] == "Textarea"
            for name, value in EVERYTHING.items():
                control = controls[name]
                control.value = json.dumps(value) if kinds[name] == "Textarea" else value
            kitchen.received.clear()
            form.call(wait=True)
            assert kitchen.received == [EVERYTHING], form.status.value
            assert {k: form.replies[0][k] for k in EVERYTHING} == EVERYTHING
            controls["text"].value = "both set"  # a second member of the oneof
            form.call(wait=True)
            assert "one of 'choice'" in unescape(form.status.value)
            controls["counts"].value = '{"x": "not a number"}'
            controls["text"].value = ""
            form.call(wait=True)
            assert "RequestError" in form.status.value and "counts" in form.status.value
            form.method_field.value = "Count"
            form.controls["label"].value = "s"
            form.controls["values"].value = "[1, 2, 3]"
            form.call(wait=True)
            assert [r["label"] for r in form.replies] == ["s-0", "s-1", "s-2"] and "<table" in form.output.value
            form.view.value = "JSON"
            assert '"label": "s-2"' in unescape(form.output.value)
            form.method_field.value = "Sum"
            form.requests_box.value = '[{"values": [1, 2]}, {"values": [4]}]'
            form.call(wait=True)
            assert form.replies == [{"label": "sum", "values": [7]}]
            form.method_field.value = "Chat"
            form.requests_box.value = '[{"label": "a", "values": [1]}, {"label": "b", "values": [5]}]'
            form.call(wait=True)
            assert [r["values"] for r in form.replies] == [[2], [10]]
            form.method_field.value = "Count"
            form.controls["label"].value = "slow"
            form.controls["values"].value = json.dumps(list(range(30)))
            form.call()
            import time

            deadline = time.monotonic() + 10
            while len(form.replies) < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            form.cancel()
            form._background.wait(10)
            assert 1 <= len(form.replies) < 30
            assert len(bench.history) == 5  # forms that could not make a request are not calls
    finally:
        kitchen.stop()


def test_the_guides_server_behind_the_gateway_in_the_widget(seed_behind_gateway: Any) -> None:  # noqa: F811
    endpoint, token, work = seed_behind_gateway
    widget = easnb.ConnectionWidget(endpoint=endpoint)
    bench = easnb.inspect(widget)
    click_connect(widget, token)
    assert "not a V2 server" in widget.status.value and "token accepted" in widget.status.value, widget.error.value
    assert "server's side" not in widget.status.value + widget.error.value
    assert titles(bench) == ["Service", "History"]
    page = bench.service
    page.proto_field.value = str(easnb.protos.path("helloworld.proto"))
    page.name_field.value = "helloworld.GreeterService"
    page.show(page.name_field.value, page.proto_field.value)
    page.inspector.controls["name"].value = "World"
    page.inspector.call(wait=True)
    assert page.inspector.replies == [{"message": "Hello, World!"}]
    wrong = easnb.ConnectionWidget(endpoint=endpoint)
    click_connect(wrong, "wrong-token")
    assert "AuthenticationError" in wrong.error.value
    with easnb.connect(endpoint, token="wrong") as conn, pytest.raises(easnb.AuthenticationError):
        conn.service(easnb.protos.path("helloworld.proto"), "helloworld.GreeterService").SayHello(name="x")
    run = subprocess.run(
        [sys.executable, "-m", "easnb", "call", endpoint, "helloworld.GreeterService/SayHello",
         "--proto", str(easnb.protos.path("helloworld.proto")), "-d", '{"name": "World"}'],
        capture_output=True, text=True, env={**os.environ, "EASNB_TOKEN": token}, timeout=60,
    )
    assert run.returncode == 0 and json.loads(run.stdout) == {"message": "Hello, World!"}, run.stderr


# -- the doctor --------------------------------------------------------------------------------


def failing_step(diagnosis: Any) -> str | None:
    step = diagnosis.failed
    return step.name if step else None


def test_doctor_names_the_failing_step(demo: DemoServer) -> None:
    assert failing_step(easnb.doctor(demo.endpoint, TOKEN, model="iris")) is None
    assert failing_step(easnb.doctor("127.0.0.1:1", TOKEN)) == "TCP"
    assert failing_step(easnb.doctor(f"https://{demo.endpoint}/", TOKEN)) == "TLS"
    wrong = easnb.doctor(demo.endpoint, "wrong")
    assert failing_step(wrong) == "token" and "Bearer" in wrong.failed.hint
    assert failing_step(easnb.doctor(demo.endpoint, TOKEN, model="nope")) == "model"
    server, port = serve([greeter_handler()])
    try:
        not_v2 = easnb.doctor(f"127.0.0.1:{port}")
        assert failing_step(not_v2) == "V2" and "conn.service" in not_v2.failed.hint
    finally:
        server.stop(None)
    path = easnb.doctor("http://1.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/svc", TOKEN)
    assert failing_step(path) == "endpoint" and "port 80" in path.failed.hint
    odd_port = easnb.doctor("svc.1.cn-hangzhou.pai-eas.aliyuncs.com:8080", TOKEN, timeout=1)
    assert "listens on port 80" in odd_port.steps[0].detail
    vpc = easnb.doctor("svc.1.vpc.cn-hangzhou.pai-eas.aliyuncs.com", TOKEN, timeout=1)
    assert failing_step(vpc) in ("DNS", "TCP") and "VPC" in vpc.failed.hint
    assert "<table" in wrong._repr_html_() and TOKEN not in repr(wrong) + wrong._repr_html_()


def test_diagnose_button(demo: DemoServer) -> None:
    widget = easnb.ConnectionWidget(endpoint=demo.endpoint, token="wrong")
    widget.diagnose(wait=True)
    assert "token" in widget.diagnosis.value and "service details page" in widget.diagnosis.value
