"""The widgets driven from Python against the demo, and saved widget state checked for the token."""

from __future__ import annotations

import json

import nbformat
import pandas as pd
import pytest

import easnb
from easnb.demo import DemoServer
from easnb.inspectors import InferInspector, ModelInspector, ServerInspector, parse_values

from .conftest import TOKEN


def all_state(widget) -> str:  # type: ignore[no-untyped-def]
    """The synced state of a widget and every widget under it, as JSON text."""
    states, todo = [], [widget]
    while todo:
        current = todo.pop()
        states.append(current.get_state())
        todo.extend(getattr(current, "children", ()))
    return json.dumps(states, default=str)


def click_connect(widget: easnb.ConnectionWidget, token: str = "") -> None:
    """What the browser does on Connect: one message with the typed token."""
    widget.token_field._handle_custom_msg({"type": "connect", "token": token}, [])
    widget.wait(10)


def test_connect_shows_status_and_keeps_token_out_of_state(demo: DemoServer) -> None:
    widget = easnb.ConnectionWidget(endpoint=demo.endpoint)
    seen = []
    widget.on_connect(seen.append)
    click_connect(widget, TOKEN)
    assert widget.connection is not None and widget.connection.live()
    assert seen == [widget.connection]
    status = widget.status.value
    assert "easnb-demo" in status and "round trip" in status and "#2a9d3a" in status
    assert "token set" in widget.token_field.placeholder and widget.has_token
    assert TOKEN not in all_state(widget) and TOKEN not in repr(widget)
    assert widget.token_field.busy is False


def test_failure_shows_hint_and_keeps_form(demo: DemoServer) -> None:
    widget = easnb.ConnectionWidget(endpoint=demo.endpoint, timeout=2)
    click_connect(widget, "wrong-token")
    assert "AuthenticationError" in widget.error.value and "service details page" in widget.error.value
    assert widget.connection is None and widget.endpoint_field.value == demo.endpoint
    click_connect(widget, TOKEN)  # pressing again after a failure works
    assert widget.connection is not None and widget.error.value == ""
    bad = easnb.ConnectionWidget(endpoint="http://user:pw@host/")
    click_connect(bad)
    assert "EndpointError" in bad.error.value and "pw" not in bad.error.value


def test_unreachable_endpoint_hint() -> None:
    widget = easnb.ConnectionWidget(endpoint="127.0.0.1:1", timeout=1)
    click_connect(widget)
    assert "UnavailableError" in widget.error.value and "connection was refused" in widget.error.value  # the hint for what gRPC said
    assert "check the port" in widget.error.value


def test_prefill_from_environment(demo: DemoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EASNB_ENDPOINT", demo.endpoint)
    monkeypatch.setenv("EASNB_TOKEN", TOKEN)
    widget = easnb.ConnectionWidget()
    assert widget.endpoint_field.value == demo.endpoint
    assert "EASNB_TOKEN" in widget.token_field.placeholder
    click_connect(widget)
    assert "from EASNB_TOKEN" in widget.status.value and TOKEN not in all_state(widget)


def test_inspectors(conn: easnb.Connection) -> None:
    server = ServerInspector(conn)
    server.wait(10)
    assert "easnb-demo" in server.output.value
    model = ModelInspector(conn, "iris")
    model.wait(10)
    assert "features" in model.output.value and "[variable, 4]" in model.output.value
    assert "iris" in model.model_field.options and "add_sub" in model.model_field.options
    form = InferInspector(conn, "iris")
    assert list(form.boxes) == ["features"]
    form.boxes["features"].value = "[6.7, 3.0, 5.2, 2.3]"
    form.run(wait=True)
    assert form.result is not None and form.result["label"].tolist() == [b"virginica"]
    assert "virginica" in form.output.value and "latency" in form.output.value
    assert list(form.frame.columns)[-1] == "label"
    form.boxes["features"].value = "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3"
    form.run(wait=True)
    assert form.result["label"].tolist() == [b"setosa", b"virginica"]
    frame = pd.DataFrame([[5.1, 3.5, 1.4, 0.2]], columns=["sepal_length", "sepal_width", "petal_length", "petal_width"])
    form.namespace = {"df": frame}
    form.frame_field.value = "df"
    form.run(wait=True)
    assert form.result["label"].tolist() == [b"setosa"]
    form.frame_field.value = "missing"
    form.run(wait=True)
    assert "No DataFrame called" in form.output.value
    bench = easnb.inspect(conn)
    titles = [bench.tabs.get_title(i) for i in range(len(bench.tabs.children))]
    assert titles == ["Server", "Model", "Infer", "Generate", "Load", "Compare", "Service", "History"]


def test_parse_values() -> None:
    assert parse_values("[1, 2]", "INT32").tolist() == [1, 2]
    assert parse_values('["a", "b"]', "BYTES").dtype == object
    assert parse_values("1,2\n3,4", "FP32").shape == (2, 2)
    with pytest.raises(easnb.EasnbError):
        parse_values("  ", "FP32")


def test_result_display_without_widgets(conn: easnb.Connection) -> None:
    result = conn.infer("text", {"TEXT": ["<b>x</b>"]})
    html = result._repr_html_()
    assert "&lt;B&gt;X&lt;/B&gt;" in html and "<B>" not in html and "<table" in html
    assert "<table" in conn.model_metadata("iris")._repr_html_()
    assert "easnb-demo" in conn.server_metadata()._repr_html_()


def test_saved_notebook_with_widget_state_holds_no_token(demo: DemoServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import easnb\n"
            f"w = easnb.ConnectionWidget(endpoint={demo.endpoint!r})\n"
            "w.connect(wait=True)\n"
            "w"
        ),
        nbformat.v4.new_code_cell("print(w.connection is not None)"),
    ]
    client = NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    import os

    os.environ["EASNB_TOKEN"] = TOKEN
    try:
        client.execute()
    finally:
        del os.environ["EASNB_TOKEN"]
    text = nbformat.writes(nb)
    assert "application/vnd.jupyter.widget-state+json" in text  # state was saved...
    assert "easnb-demo" in text  # ...including the status after Connect
    assert TOKEN not in text  # ...but never the token
    assert nb.cells[1].outputs[0]["text"].strip() == "True"
