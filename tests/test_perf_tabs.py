"""The workbench's Load and Compare tabs, driven from Python (the browser test clicks them too)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import easnb
from easnb.compare_tab import CompareTab
from easnb.demo import DemoServer
from easnb.demo.models import IRIS_FEATURES, load_iris
from easnb.history import History
from easnb.load_tab import LoadTab
from easnb.workbench import Workbench

from .conftest import TOKEN


def test_workbench_has_load_and_compare_tabs(conn: easnb.Connection) -> None:
    bench = Workbench(conn)
    titles = [bench.tabs.get_title(i) for i in range(len(bench.tabs.children))]
    assert titles.index("Infer") < titles.index("Load") < titles.index("Compare") < titles.index("History")


def test_load_tab_fills_the_chart_and_history(conn: easnb.Connection) -> None:
    history = History()
    tab = LoadTab(conn, history=history)
    tab.model_field.value, tab.levels.value, tab.seconds.value, tab.warmup.value = "iris", "1,2", 0.4, 0.1
    tab.start(wait=True)
    assert tab.report is not None and [lv.level for lv in tab.report.levels] == [1, 2], tab.output.value
    assert "<svg" in tab.chart.value and "easnb-load-report" in tab.output.value
    call = history[-1]
    assert call.kind == "load" and call.status == "OK" and "concurrency 1,2" in call.summary
    code = history.code(len(history) - 1, "easnb")
    assert 'conn.load_test("iris", inputs, concurrency=[1, 2]' in code and TOKEN not in code
    with pytest.raises(easnb.EasnbError, match="many calls"):
        history.code(len(history) - 1, "grpcurl")
    with pytest.raises(easnb.EasnbError, match="Load tab"):
        history.replay(len(history) - 1, conn)


def test_load_tab_stop_keeps_finished_levels(conn: easnb.Connection) -> None:
    tab = LoadTab(conn)
    tab.model_field.value, tab.levels.value, tab.seconds.value, tab.warmup.value = "iris", "1,2,4", 0.6, 0.0
    seen: list[int] = []
    tab.start()
    while tab.report is None and len(seen) < 400 and "1 of 3" not in tab.progress.value:
        import time

        time.sleep(0.02)
        seen.append(1)
    tab.stop()
    tab.wait(30)
    assert tab.report is not None and tab.report.interrupted and 1 <= len(tab.report.levels) < 3
    assert tab.history[-1].status == "stopped by the user: the levels that finished are shown"  # not "OK"


def test_load_tab_errors_are_shown(conn: easnb.Connection) -> None:
    tab = LoadTab(conn)
    tab.model_field.value, tab.levels.value = "iris", "1,x"
    tab.start(wait=True)
    assert "not numbers" in tab.output.value and not tab.start_button.disabled


def test_compare_tab_two_models_and_a_second_endpoint(conn: easnb.Connection, demo: DemoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    features, _ = load_iris()
    frame = pd.DataFrame(features, columns=list(IRIS_FEATURES))
    monkeypatch.setattr("easnb.load_tab._user_namespace", lambda: {"df": frame})
    history = History()
    tab = CompareTab(conn, history=history)
    assert tab.other is None
    tab.model_a.value, tab.model_b.value = "iris", "iris_v2"
    tab.picker.kind.value, tab.picker.variable.value = "DataFrame", "df"
    tab.run(wait=True)
    assert "differs on 6 of 150 rows" in tab.output.value and history[-1].kind == "compare"
    assert "DataFrame df (150 rows)" in history[-1].summary
    assert 'easnb.compare(conn, conn, "iris", df, model_b="iris_v2"' in history.code(len(history) - 1)
    other = tab.other_widget()
    assert other.endpoint_field.value == "" and not other.has_token  # A's token never offered to B
    other.endpoint_field.value = demo.endpoint
    other.set_token(demo.token)
    other.connect(wait=True)
    tab.model_b.value = ""
    tab.picker.kind.value = "Example"
    tab.run(wait=True)
    assert "identical" in tab.output.value, tab.output.value
    assert "other = easnb.connect(" in history.code(len(history) - 1) and demo.token not in history.code(len(history) - 1)
    other.connection.close()


def test_load_tab_streaming_model(conn: easnb.Connection) -> None:
    history = History()
    tab = LoadTab(conn, history=history)
    tab.model_field.value, tab.levels.value, tab.seconds.value, tab.warmup.value = "textgen", "1", 0.5, 0.1
    tab.picker.kind.value, tab.picker.prompt.value = "Prompt (streaming model)", "one two three <b>four</b>"
    tab.start(wait=True)
    assert tab.report is not None and tab.report.levels[0].stream["ttft_p50_ms"] > 0, tab.output.value
    assert "ttft_p50_ms" in tab.output.value and "<b>four" not in tab.output.value
    code = history.code(len(history) - 1)
    assert 'prompt = "one two three <b>four</b>"' in code and "stream=True" in code


def test_history_refuses_to_replay_a_kind_it_does_not_know(conn: easnb.Connection) -> None:
    from dataclasses import replace

    history = History()
    history.record(conn, "metadata", "iris", "", {"model": "iris"}, lambda: conn.model_metadata("iris"))
    history.calls.append(replace(history[-1], kind="teleport"))
    with pytest.raises(easnb.EasnbError, match="'teleport' call is not one History can make again"):
        history.replay(len(history) - 1, conn)


def test_load_tab_a_model_that_fails_is_not_ok_in_history(conn: easnb.Connection) -> None:
    history = History()
    tab = LoadTab(conn, history=history)
    tab.model_field.value, tab.levels.value, tab.seconds.value, tab.warmup.value = "textgen", "1", 0.3, 0.0
    tab.picker.kind.value, tab.picker.prompt.value = "Prompt (streaming model)", "please fail"  # the demo's textgen fails
    tab.start(wait=True)
    assert "failed on purpose" in tab.output.value and history[-1].status == "StreamError", history[-1].status


def test_history_percentiles_are_per_kind_and_leave_sweeps_out(conn: easnb.Connection) -> None:
    """A generation's seconds and an infer's milliseconds are not one distribution: History's percentiles are a
    kind's (by default the kind made most, never a sweep), one line a kind in its HTML, none for load and compare."""
    history = History()
    row = {"features": np.ones((1, 4), np.float32)}
    for _ in range(3):
        history.record(conn, "infer", "iris", "", {"model": "iris"}, lambda: conn.infer("iris", row))
    history.record(conn, "generate", "textgen", "", {"model": "textgen"},
                   lambda: conn.generate("textgen", "one two three four five six", max_tokens=6).finish())
    tab = LoadTab(conn, history=history)
    tab.model_field.value, tab.levels.value, tab.seconds.value, tab.warmup.value = "iris", "1", 0.3, 0.0
    tab.start(wait=True)
    assert [c.kind for c in history] == ["infer"] * 3 + ["generate", "load"] and history[-1].status == "OK"
    assert history.kinds() == ["infer", "generate"]
    infer, generate = history.latencies("infer"), history.latencies("generate")
    assert history.percentiles()["p50"] == pytest.approx(float(np.percentile(infer, 50)))
    assert history.percentiles("generate")["p99"] == pytest.approx(generate[0]) and history.percentiles("nope") == {}
    page = history._repr_html_()
    assert "infer: 3 calls" in page and "generate: 1 call ·" in page and "load:" not in page
