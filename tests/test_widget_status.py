"""What a newcomer sees after Run All: the widget's lights follow its connection, History follows the
calls, one latency per call, and a doctor that needs no emoji font."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

import easnb
from easnb.demo import DemoServer
from easnb.widget_status import GREEN, GREY, RED

from .conftest import TOKEN, free_port
from .test_widgets import click_connect

pytest.importorskip("grpc_reflection", reason="the proto extra (grpcio-reflection) is not installed")


def lights_of(html: str) -> list[str]:
    """The colours of the live and ready dots, in order."""
    return re.findall(r"color:(#[0-9a-f]{3,6})'>&#9679;</span> (?:live|ready)", html)


def eventually(check, seconds: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_wrong_token_leaves_live_green_since_the_server_answered(demo: DemoServer) -> None:
    widget = easnb.ConnectionWidget(endpoint=demo.endpoint)
    assert lights_of(widget.status.value) == [GREY, GREY] and "press Connect" in widget.status.value
    click_connect(widget, "wrong-token")
    assert lights_of(widget.status.value) == [GREEN, GREY]
    assert "refused the token" in widget.status.value and "press Connect" in widget.status.value
    nothing = easnb.ConnectionWidget(endpoint=f"127.0.0.1:{free_port()}", timeout=1)
    click_connect(nothing, TOKEN)
    assert lights_of(nothing.status.value) == [RED, GREY] and "no answer" in nothing.status.value


def test_closing_the_widgets_connection_greys_the_lights_and_the_workbench_names_connect(demo: DemoServer) -> None:
    widget = easnb.ConnectionWidget(endpoint=demo.endpoint, token=TOKEN)
    bench = easnb.inspect(widget)
    widget.connect(wait=True)
    assert lights_of(widget.status.value) == [GREEN, GREEN]
    first = widget.connection
    widget.connect(wait=True)  # a reconnect closes the old connection: that is not "closed"
    assert lights_of(widget.status.value) == [GREEN, GREEN] and first.closed
    widget.connection.close()  # the quickstart's old clean-up
    assert lights_of(widget.status.value) == [GREY, GREY]
    assert "connection closed" in widget.status.value and "press Connect" in widget.status.value
    server = bench.tabs.children[0]
    server.run(wait=True)
    assert "press connect in the connection widget" in server.output.value.lower() and "ClosedError" in server.output.value
    widget.connect(wait=True)
    server.run(wait=True)
    assert "easnb-demo" in server.output.value and lights_of(widget.status.value) == [GREEN, GREEN]


def test_the_widget_says_when_the_server_is_gone_and_when_it_is_back() -> None:
    port = free_port()
    first = DemoServer(token=TOKEN, port=port).start()
    widget = easnb.ConnectionWidget(endpoint=first.endpoint, token=TOKEN)
    widget.connect(wait=True)
    assert lights_of(widget.status.value) == [GREEN, GREEN]
    bench = easnb.inspect(widget)
    first.stop()
    eventually(lambda: "stopped answering" in widget.status.value)
    assert lights_of(widget.status.value) == [GREY, GREY] and "press Connect" in widget.status.value
    # the workbench's header said "live · ready" still: it says the same as the widget
    eventually(lambda: "stopped answering" in bench.status.value)
    assert "press Connect" in bench.status.value
    with DemoServer(token=TOKEN, port=port):
        eventually(lambda: _live(widget.connection))  # any call reconnects the same connection
        eventually(lambda: lights_of(widget.status.value) == [GREEN, GREEN])
        assert "easnb-demo" in widget.status.value
        eventually(lambda: "stopped answering" not in bench.status.value)
        assert "easnb-built" in bench.status.value
    widget.connection.close()
    eventually(lambda: "connection closed" in bench.status.value)


def _live(conn: easnb.Connection) -> bool:
    try:
        return conn.live(timeout=1)
    except easnb.EasnbError:
        return False


def test_history_selects_the_newest_call_and_shows_its_code(demo: DemoServer) -> None:
    widget = easnb.ConnectionWidget(endpoint=demo.endpoint, token=TOKEN)
    widget.connect(wait=True)
    bench = easnb.inspect(widget)
    _, model, infer, *_, view = bench.tabs.children
    assert view.entry.value is None and view.code.value == ""
    infer.model_field.value = "iris"
    infer.fill_example()
    infer.run(wait=True)
    assert view.entry.value == 0 and re.search(r"conn\.infer\(['\"]iris['\"]", view.code.value)  # no click needed
    model.model_field.value = "add_sub"  # the Model tab's calls are calls too
    model.wait(10)
    assert view.entry.value == 1 and bench.history[1].kind == "metadata" and re.search(r"model_metadata\(['\"]add_sub['\"]", view.code.value)
    view.flavour.value = "grpcurl"
    assert "ModelMetadata" in view.code.value and '"add_sub"' in view.code.value
    view.entry.value = 0  # picked by hand: new calls no longer move the selection
    assert "ModelInfer" in view.code.value
    infer.run(wait=True)
    assert view.entry.value == 0 and "ModelInfer" in view.code.value and len(bench.history) == 3
    view.flavour.value = "tritonclient"
    assert "client.infer(" in view.code.value
    view.entry.value = 2  # picking the newest follows new calls again
    model.run(wait=True)
    assert view.entry.value == 3 and re.search(r"get_model_metadata\(['\"]add_sub['\"]", view.code.value)


def test_one_call_one_latency(demo: DemoServer) -> None:
    widget = easnb.ConnectionWidget(endpoint=demo.endpoint, token=TOKEN)
    widget.connect(wait=True)
    bench = easnb.inspect(widget)
    infer = bench.infer
    assert infer is not None
    infer.model_field.value = "iris"
    infer.fill_example()
    for _ in range(3):
        infer.run(wait=True)
        call = bench.history[-1]
        assert infer.latency_ms == call.latency_ms
        shown = re.search(r"latency ([\d.]+) ms", infer.output.value).group(1)  # type: ignore[union-attr]
        row = re.search(r"<td[^>]*>([\d.]+)</td>\s*</tr>", bench.history_view.table.value).group(1)  # type: ignore[union-attr]
        assert shown == row == f"{call.latency_ms:.1f}"  # the newest row is first
    service = bench.service.inspector
    service.controls["name"].value = "latency"
    service.call(wait=True)
    assert service.latency_ms == bench.history[-1].latency_ms and bench.history[-1].kind == "service"
    assert f"latency {service.latency_ms:.1f} ms" in service.status.value


def test_history_and_result_tables_have_cell_spacing(demo: DemoServer) -> None:
    from easnb import display

    with easnb.connect(demo.endpoint, token=TOKEN) as conn:
        result = conn.infer("iris", {"features": np.array([[5.1, 3.5, 1.4, 0.2]], np.float32)})
    html = display.result_html(result)
    cells = re.findall(r"<(?:th|td)[ >][^>]*>", html)
    assert cells and all("padding:" in cell for cell in cells)


def test_doctor_marks_are_words_on_colours_and_times_do_not_wrap(demo: DemoServer) -> None:
    html = easnb.doctor(demo.endpoint, "wrong-token")._repr_html_()
    assert not re.search("[\u2700-\u27bf\U0001f300-\U0001faff]", html)  # no emoji
    assert ">pass</span>" in html and ">FAIL</span>" in html and ">skipped</span>" in html
    assert "background:#d33" in html and "background:#2a9d3a" in html
    assert re.search(r"white-space:nowrap'>[\d.]+&nbsp;ms", html)


def test_a_server_that_keeps_dropping_the_connection_gets_one_reconnection_at_a_time(demo: DemoServer) -> None:
    import threading

    import grpc

    widget = easnb.ConnectionWidget(endpoint=demo.endpoint, token=TOKEN)
    widget.connect(wait=True)
    before = threading.active_count()
    for _ in range(200):  # what a flapping server makes the channel report
        widget._follow._changed(grpc.ChannelConnectivity.IDLE)
    for _ in range(20):  # and spaced out, so that each reconnection is over before the next drop
        time.sleep(0.05)
        widget._follow._changed(grpc.ChannelConnectivity.IDLE)
    settled = time.monotonic() + 3  # a finished reconnection leaves no thread behind (its 10 s timer was one)
    while threading.active_count() > before + 2 and time.monotonic() < settled:
        time.sleep(0.05)
    assert threading.active_count() <= before + 2
    assert lights_of(widget.status.value) == [GREEN, GREEN]
