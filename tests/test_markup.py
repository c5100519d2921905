"""Whatever a server sends shows as text: every HTML sink of easnb gets a hostile value and must stay inert.

The hostile server is real (grpcio on loopback): a V2 service whose server name, model
name, versions, platform, properties, tensor names, reply values and error details are
markup, and server reflection that lists a service named with markup.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from html.parser import HTMLParser
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import easnb
from easnb import _proto
from easnb.demo.introspection import health_handler
from easnb.demo.models import Model
from easnb.demo.server import SERVER_OPTIONS, V2Service, greeter_handler, v2_handler
from easnb.display import error_html, probability_bars, table
from easnb.doctor import doctor
from easnb.history import History
from easnb.markup import Markup, escape, html, join, text
from easnb.results import ModelMetadata, TensorMetadata

pytest.importorskip("grpc_reflection", reason="the proto extra (grpcio-reflection) is not installed")

EVIL = "\"'><img src=x onerror=document.body.dataset.x=1><script>alert(1)</script>&amp;"
SHOWN = "<img src=x onerror=document.body.dataset.x=1>"  # what survives a repr() of EVIL too
EVIL_SERVICE = "evil.<svg onload=alert(2)>"
SCRIPTED = {"img", "script", "iframe", "object", "embed"}


class Tags(HTMLParser):
    """Every start tag and its attributes, and the text, of some HTML."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def assert_inert(markup: str, shows: str = SHOWN) -> None:
    """No element a hostile value could have made, no event handler, and the value there as plain text."""
    parsed = Tags(markup)
    for tag, attrs in parsed.tags:
        assert tag not in SCRIPTED, (tag, markup)
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs, markup)
    assert shows in "".join(parsed.text) or any(shows in (v or "") for _, a in parsed.tags for v in a.values()), markup


# -- the helper -------------------------------------------------------------------------------


def test_html_escapes_values_and_keeps_its_own_markup() -> None:
    assert html("<b>{}</b>", "<i>") == "<b>&lt;i&gt;</b>"
    assert html("<span title='{t}'>{n:.2f}</span>", t="a'b\"c", n=1.234) == "<span title='a&#x27;b&quot;c'>1.23</span>"
    assert html("<div>{}</div>", html("<i>{}</i>", "&")) == "<div><i>&amp;</i></div>"
    assert escape(Markup("<b>ok</b>")) == "<b>ok</b>"
    assert Markup("<p>") + "<x>" == "<p>&lt;x&gt;" and "<x>" + Markup("<p>") == "&lt;x&gt;<p>"
    assert join(["<a>", Markup("<br>")], "<hr>") == "&lt;a&gt;<hr><br>"
    assert text("</pre><script>") == "<pre class='easnb-text'>&lt;/pre&gt;&lt;script&gt;</pre>"
    assert isinstance(html("{}", 1), Markup) and isinstance(join([]), Markup)
    assert Markup("<b>{}</b>").format("<i>") == "<b>&lt;i&gt;</b>" == Markup("<b>%s</b>") % "<i>"
    assert Markup("<b>%s %s %d</b>") % ("<i>", Markup("<br>"), 3) == "<b>&lt;i&gt; <br> 3</b>"
    assert Markup("<b>%(a)s</b>") % {"a": "<i>"} == "<b>&lt;i&gt;</b>"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_stays_text_in_an_element_and_an_attribute(value: str) -> None:
    parsed = Tags(html("<div title='{0}' class=\"{0}\"><b>{0}</b></div>", value))
    assert [t for t, _ in parsed.tags] == ["div", "b"]
    normalised = value.replace("\r\n", "\n").replace("\r", "\n")
    assert parsed.tags[0][1]["title"] in (value, normalised) and parsed.tags[0][1]["class"] in (value, normalised)
    assert "".join(parsed.text) in (value, normalised)


def test_tables_bars_and_errors_escape() -> None:
    assert_inert(table([EVIL], [[EVIL]], caption=EVIL))
    assert_inert(probability_bars(EVIL, np.array([[0.5, 0.5]]), labels=[EVIL, EVIL]))
    assert_inert(error_html(easnb.EasnbError(EVIL, hint=EVIL)))
    assert_inert(error_html(ValueError(EVIL)))


# -- a hostile server, every sink ------------------------------------------------------------


class HostileV2(V2Service):
    def server_metadata(self, request: Any) -> Any:
        return _proto.ServerMetadataResponse(name=EVIL, version=EVIL, extensions=[EVIL])


def hostile_model() -> Model:
    def run(x: Any, _: Any) -> dict[str, tuple[str, np.ndarray]]:
        return {EVIL: ("BYTES", np.array([[EVIL.encode()]], dtype=object))}

    tensors = (TensorMetadata(EVIL, "BYTES", (-1, 1)),)
    meta = ModelMetadata(EVIL, ("1",), EVIL, tensors, tensors, {EVIL: EVIL})
    return Model(meta, run)


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    from grpc_reflection.v1alpha import reflection, reflection_pb2

    names = [EVIL_SERVICE, "helloworld.GreeterService", reflection.SERVICE_NAME]
    servicer = reflection.ReflectionServicer(names, pool=_proto.POOL)
    method = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        reflection_pb2.ServerReflectionRequest.FromString,
        reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        handlers=[
            v2_handler(HostileV2({EVIL: hostile_model()})),
            greeter_handler(),
            health_handler([]),
            grpc.method_handlers_generic_handler(reflection.SERVICE_NAME, {"ServerReflectionInfo": method}),
        ],
        options=SERVER_OPTIONS,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None).wait()


def test_every_sink_shows_a_hostile_server_as_text(hostile: str) -> None:
    from easnb.inspectors import InferInspector, ModelInspector, ServerInspector
    from easnb.service_inspector import ServiceInspector
    from easnb.widgets import status_html
    from easnb.workbench import Workbench

    with easnb.connect(hostile) as conn:
        found = conn.discover()
        assert EVIL_SERVICE in found.other_services
        assert_inert(found._repr_html_())
        assert_inert(status_html(found, EVIL))
        assert_inert(conn.server_metadata()._repr_html_())
        assert_inert(conn.model_metadata(EVIL)._repr_html_())

        server = ServerInspector(conn)
        server.wait(10)
        assert_inert(server.output.value)
        model = ModelInspector(conn, EVIL)
        model.wait(10)
        assert_inert(model.output.value)

        history = History()
        infer = InferInspector(conn, EVIL, history=history)
        infer.boxes[EVIL].value = f"[{_json(EVIL)}]"
        infer.parameters_field.value = "{" + f"{_json(EVIL)}: {_json(EVIL)}" + "}"
        infer.run(wait=True)
        assert infer.result is not None, infer.output.value
        assert_inert(infer.output.value)
        assert_inert(infer.result._repr_html_())
        infer.model_field.value = EVIL + "missing"  # the server's NOT_FOUND details name it
        infer.run(wait=True)
        assert_inert(infer.note.value + infer.output.value)

        greeter = ServiceInspector(conn, "helloworld.GreeterService", history=history)
        greeter.controls["name"].value = EVIL
        greeter.call(wait=True)
        assert greeter.replies == [{"message": f"Hello, {EVIL}!"}]
        assert_inert(greeter.output.value)
        greeter.view.value = "JSON"
        assert_inert(greeter.output.value)
        assert_inert(history._repr_html_())

        bench = Workbench(conn)
        assert_inert(bench.status.value, shows=EVIL_SERVICE)
        page = bench.service  # it opened the first service, the hostile one, by itself
        assert_inert(page.body.children[0].value, shows=EVIL_SERVICE)
        page.show(EVIL)  # a name typed (or pasted) by the user
        assert_inert(page.body.children[0].value)

        from easnb.workbench import HistoryView

        view = HistoryView(conn, history)
        assert_inert(view.table.value)
        for index in range(len(history)):  # each replay adds a call: only the ones made above
            view.entry.value = index
            view.replay()
            assert_inert(view.output.value)


def test_comparisons_and_load_reports_show_hostile_names_as_text() -> None:
    import pandas as pd

    from easnb.compare import Comparison, OutputDiff
    from easnb.loadreport import LoadReport

    frame = pd.DataFrame({EVIL: [EVIL]}, index=[EVIL])
    diff = OutputDiff(EVIL, "text", 0.0, 0.0, 1, 0.5)
    comparison = Comparison(EVIL, EVIL, 1, [diff], frame, [EVIL], [EVIL], frame, 1e-5, 1e-8)
    assert_inert(comparison._repr_html_())
    assert_inert(LoadReport(EVIL, "concurrency", stopped=EVIL)._repr_html_())


def test_html_is_built_only_through_the_helper() -> None:
    """No module but easnb.markup uses the standard library's html module: one place escapes."""
    import ast
    from pathlib import Path

    package = Path(easnb.__file__).parent
    users = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            if any(n == "html" or n.startswith("html.") for n in names):
                users.append(path.relative_to(package).as_posix())
    assert users == ["markup.py"]


def test_the_doctor_shows_a_hostile_endpoint_as_text() -> None:
    assert_inert(doctor(EVIL, timeout=0.5)._repr_html_())


def _json(value: str) -> str:
    import json

    return json.dumps(value)
