"""The Generate tab's "Other" box takes sampling settings only: what runs is what History replays and copies."""

from __future__ import annotations

import pytest

import easnb
from easnb.generate_tab import GenerateInspector


@pytest.mark.parametrize("other", ['{"prompt": "x"}', '{"model": "iris"}', '{"version": "1"}', '{"timeout": 5}',
                                   '{"headers": {"x-a": "1"}}', '{"first_response_timeout": 1}'])
def test_other_refuses_what_is_not_a_sampling_setting(conn: easnb.Connection, other: str) -> None:
    tab = GenerateInspector(conn, "textgen")
    tab.prompt.value = "hi"
    tab.extra.value = other
    tab.generate(wait=True)
    shown = tab.output.value
    assert "TypeError" not in shown and "not a sampling setting" in shown, shown  # was: a raw TypeError, or run
    assert len(tab.history) == 0  # and recorded with it in sampling_parameters, replay then failing on version=


def test_other_settings_run_replay_and_copy_alike(conn: easnb.Connection) -> None:
    tab = GenerateInspector(conn, "textgen")
    tab.prompt.value = "one two three"
    tab.extra.value = '{"max_tokens": 2, "top_k": 4}'
    tab.generate(wait=True)
    assert tab.output.value == "" and tab.generation is not None and tab.generation.text == " You said:"
    again = tab.history.replay(0, conn)
    assert again.text == " You said:" and tab.history[1].status == "OK"
    assert '"top_k": 4' in tab.history.code(0, "easnb") and "top_k" in tab.history.code(0, "tritonclient")


def test_a_stopped_generation_is_kept_as_stopped_not_ok(conn: easnb.Connection) -> None:
    import time

    tab = GenerateInspector(conn, "textgen")
    tab.prompt.value = " ".join("w" * 40)
    tab.max_tokens.value = 60
    tab.generate()
    ends = time.monotonic() + 10
    while tab.generation is None or not tab.generation.stream.responses:
        assert time.monotonic() < ends
        time.sleep(0.01)
    tab.stop()
    tab.wait(10)
    assert tab.generation.stream.cancelled and tab.history[-1].status == "stopped"  # was: "OK"
    assert tab.history.latencies("generate") == []  # a part of a generation is not one in the percentiles
    tab.generate(wait=True)
    assert tab.history[-1].status == "OK" and len(tab.history.latencies("generate")) == 1
