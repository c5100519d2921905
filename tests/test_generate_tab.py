"""The workbench's Generate tab against the demo: live text, Stop, latency, History, code, the Infer tab's offer."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import easnb
from easnb.demo import DemoServer
from easnb.demo.models import all_models
from easnb.generate_tab import GenerateInspector, latency_chart
from easnb.workbench import Workbench

from .conftest import TOKEN


def titles(bench: Workbench) -> list[str]:
    return [bench.tabs.get_title(i) for i in range(len(bench.tabs.children))]


def test_the_tab_is_there_for_a_text_generator_or_when_asked(conn: easnb.Connection) -> None:
    bench = Workbench(conn)
    assert "Generate" in titles(bench) and bench.generate.model_field.value == "textgen"
    assert "Generate" not in titles(Workbench(conn, generate=False))
    with DemoServer(token="", models={"iris": all_models()["iris"]}) as plain, easnb.connect(plain.endpoint) as other:
        assert "Generate" not in titles(Workbench(other))
        assert "Generate" in titles(Workbench(other, generate=True))


def test_generate_shows_text_latency_and_records_history(conn: easnb.Connection) -> None:
    bench = Workbench(conn)
    tab = bench.generate
    tab.prompt.value = "hi <img src=x onerror=alert(1)>"
    tab.max_tokens.value = 10
    tab.extra.value = '{"stop": ["\\n"]}'
    tab.generate(wait=True)
    assert tab.output.value == "" and tab.generation.finished
    assert "&lt;img src=x onerror=alert(1)&gt;" in tab.text.value and "<img" not in tab.text.value
    assert "easnb-ttft" in tab.stats.value and "finish reason stop" in tab.stats.value and "6 tokens" in tab.stats.value
    assert tab.chart.value.count("<rect") == 5 and "<svg" in tab.chart.value
    call = bench.history[-1]
    assert call.kind == "generate" and call.status == "OK" and call.request["sampling"]["stop"] == ["\n"]
    again = bench.history.replay(len(bench.history) - 1, conn)
    assert again.text == tab.generation.text and bench.history[-1].kind == "generate"
    assert not tab.button.disabled and tab.stop_button.disabled


def test_copied_code_runs(demo: DemoServer, conn: easnb.Connection) -> None:
    bench = Workbench(conn)
    bench.generate.prompt.value = "copy me"
    bench.generate.generate(wait=True)
    code = bench.history.code(len(bench.history) - 1, "easnb")
    env = {**os.environ, "EASNB_TOKEN": TOKEN}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(" You said: copy me.\nstop 4 tokens") and TOKEN not in code
    flavour = bench.history.code(len(bench.history) - 1, "tritonclient")
    assert "enable_empty_final_response=True" in flavour and "triton_final_response" in flavour and TOKEN not in flavour
    compile(flavour, "<tritonclient>", "exec")
    with pytest.raises(easnb.EasnbError, match="grpcurl"):
        bench.history.code(len(bench.history) - 1, "grpcurl")


def test_stop_cancels_on_the_server(demo: DemoServer, conn: easnb.Connection) -> None:
    tab = GenerateInspector(conn, "textgen")
    tab.prompt.value = " ".join("w" * 40)
    tab.max_tokens.value = 60
    before = demo.service.cancelled
    tab.generate()
    ends = time.monotonic() + 10
    while tab.generation is None or not tab.generation.stream.responses:
        assert time.monotonic() < ends
        time.sleep(0.01)
    tab.stop()
    tab.wait(10)
    assert "stopped" in tab.stats.value and tab.generation.stream.cancelled and tab.generation.tokens < 42
    ends = time.monotonic() + 5
    while demo.service.cancelled <= before:
        assert time.monotonic() < ends, "the server never saw the Stop"
        time.sleep(0.02)
    assert tab.history[-1].status == "stopped"  # was: "OK"
    assert tab.history.latencies("generate") == []  # a part of a generation is not one in the percentiles
    tab.generate(wait=True)
    assert tab.history[-1].status == "OK" and len(tab.history.latencies("generate")) == 1


def test_errors_show_in_the_tab(conn: easnb.Connection) -> None:
    tab = GenerateInspector(conn, "iris")
    tab.prompt.value = "x"
    tab.generate(wait=True)
    assert "features" in tab.output.value and "conn.stream" in tab.output.value
    tab.model_field.value = "textgen"
    tab.prompt.value = "fail please"
    tab.generate(wait=True)
    assert "failed on purpose" in tab.output.value and "You said:" in tab.text.value
    tab.extra.value = "[1]"
    tab.generate(wait=True)
    assert "JSON object" in tab.output.value


def test_the_infer_tab_offers_generate(conn: easnb.Connection) -> None:
    bench = Workbench(conn)
    bench.infer.model_field.value = "textgen"
    offer = bench.infer.inputs_box.children[0]
    assert "generates text" in offer.children[0].value and "UNIMPLEMENTED" in offer.children[0].value
    bench.generate.model_field.value = ""
    offer.children[1].click()
    assert titles(bench)[bench.tabs.selected_index] == "Generate" and bench.generate.model_field.value == "textgen"
    bench.infer.model_field.value = "iris"
    assert all(isinstance(c, type(bench.infer.boxes["features"])) for c in bench.infer.inputs_box.children)


def test_latency_chart() -> None:
    assert latency_chart([]) == ""
    chart = latency_chart([1.0, 3.0, 2.0])
    assert chart.count("<rect") == 3 and "median 2.00 ms" in chart and "max 3.00 ms" in chart


def test_a_run_that_fails_before_it_starts_does_not_show_the_last_one(conn: easnb.Connection) -> None:
    tab = Workbench(conn).generate
    tab.prompt.value = "first answer"
    tab.generate(wait=True)
    assert "first answer" in tab.text.value
    tab.stop()
    tab.stop()  # Stop after the end, twice: nothing to cancel, nothing changes
    assert tab.generation.finished and not tab.generation.stream.cancelled and tab.output.value == ""
    tab.model_field.value = ""
    tab.generate(wait=True)
    assert "Pick or type a model name" in tab.output.value
    assert tab.text.value == "" and tab.stats.value == ""  # was: the last run's text and stats shown again
    assert not tab.button.disabled and tab.stop_button.disabled
