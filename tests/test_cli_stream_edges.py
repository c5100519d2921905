"""``easnb stream`` given what a newcomer writes: a JSON object for a BYTES input such as sampling_parameters."""

from __future__ import annotations

import json

from easnb.demo import DemoServer

from .test_cli import run


def test_a_json_object_in_a_bytes_input_goes_as_its_json_text(demo: DemoServer) -> None:
    done = run("stream", demo.endpoint, "textgen", "--inputs",
               '{"text_input": ["one two three"], "stream": [true], "sampling_parameters": [{"max_tokens": 2}]}',
               token=demo.token)
    assert done.returncode == 0, done.stderr  # was: "has a dict at flat index 0", exit 1
    documents = [json.loads(line) for line in done.stdout.splitlines()]
    texts = [d["outputs"][0]["data"][0] for d in documents if d["outputs"]]
    assert texts == [" You", " said:"] and documents[-1]["final"] is True
    nested = run("stream", demo.endpoint, "textgen", "--inputs",
                 '{"text_input": ["x"], "sampling_parameters": [{"max_tokens": {"deep": [1]}}]}', token=demo.token)
    assert nested.returncode == 1 and "max_tokens" in nested.stderr and "Traceback" not in nested.stderr  # the model says


def test_generate_refuses_a_param_that_names_the_prompt_or_model(demo: DemoServer) -> None:
    for pair in ("prompt=x", "model=iris"):
        done = run("generate", demo.endpoint, "textgen", "hi", "--param", pair, token=demo.token)
        assert done.returncode == 2 and "not a sampling setting" in done.stderr, done.stderr  # was 1, a TypeError
        assert "TypeError" not in done.stderr
