"""``easnb stream`` and ``easnb generate`` against the demo, as a user's shell runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from easnb.demo import DemoServer

from .test_cli import run


def test_stream_prints_one_document_per_response_as_it_arrives(demo: DemoServer) -> None:
    env = {**os.environ, "EASNB_TOKEN": demo.token}
    args = [sys.executable, "-m", "easnb", "stream", demo.endpoint, "textgen", "--parameter", "delay_ms=400",
            "--inputs", '{"text_input": ["a b"], "stream": [true]}']
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        assert proc.poll() is None  # printed while the model was still generating
        rest = [json.loads(line) for line in proc.stdout]  # type: ignore[union-attr]
        assert proc.wait(30) == 0, proc.stderr.read()  # type: ignore[union-attr]
    finally:
        proc.kill()
    documents = [first, *rest]
    texts = [d["outputs"][0]["data"][0] for d in documents if d["outputs"]]
    assert texts == [" You", " said:", " a", " b."]
    assert [d["final"] for d in documents] == [False] * 4 + [True] and documents[-1]["outputs"] == []
    assert documents[0]["outputs"][0]["name"] == "text_output" and documents[0]["after_ms"] < documents[-1]["after_ms"]


def test_stream_errors_and_usage(demo: DemoServer) -> None:
    failed = run("stream", demo.endpoint, "textgen", "--inputs", '{"text_input": ["fail"], "stream": [true]}', token=demo.token)
    assert failed.returncode == 1 and "failed on purpose" in failed.stderr and "Traceback" not in failed.stderr
    assert len(failed.stdout.splitlines()) == 2  # what arrived before the error was printed
    bad = run("stream", demo.endpoint, "textgen", "--inputs", "{nope", token=demo.token)
    assert bad.returncode == 2 and "--inputs is not JSON" in bad.stderr
    unknown = run("stream", demo.endpoint, "textgen", "--inputs", '{"prompt": ["x"]}', token=demo.token)
    assert unknown.returncode == 1 and "text_input" in unknown.stderr


def test_generate_prints_text_and_a_summary(demo: DemoServer) -> None:
    result = run("generate", demo.endpoint, "textgen", "one two three", "--max-tokens", "4", "--param", "top_p=0.5",
                 token=demo.token)
    assert result.returncode == 0, result.stderr
    assert result.stdout == " You said: one two\n"
    assert "finish_reason: length" in result.stderr and "tokens: 4" in result.stderr and "time to first token" in result.stderr
    assert demo.token not in result.stdout + result.stderr
    wrong = run("generate", demo.endpoint, "iris", "hi", token=demo.token)
    assert wrong.returncode == 1 and "features" in wrong.stderr
    usage = run("generate", demo.endpoint, "textgen", "hi", "--param", "novalue", token=demo.token)
    assert usage.returncode == 2 and "not k=v" in usage.stderr


HOSTILE_WORDS = "a \x1b]52;c;cHduZWQ=\x07 \x9b2J \u202eb \x1b[8mhidden\x7f"  # clipboard write, C1 CSI, bidi, conceal, DEL


def raw_controls(text: str) -> list[str]:
    """The control and format characters in ``text`` a terminal would act on (newline and tab are text)."""
    import unicodedata

    return [c for c in text if c not in "\n\t" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]


def test_generated_and_streamed_text_reaches_the_terminal_with_its_controls_visible(demo: DemoServer) -> None:
    """The model's text (here the demo echoing the words) is a server's: its escape sequences are shown, not run."""
    generated = run("generate", demo.endpoint, "textgen", HOSTILE_WORDS, "--max-tokens", "12", token=demo.token)
    assert generated.returncode == 0, generated.stderr
    assert not raw_controls(generated.stdout + generated.stderr), generated.stdout
    assert "\\x1b]52;c;cHduZWQ=\\x07" in generated.stdout and "\\x9b2J" in generated.stdout and generated.stdout.endswith("\n")
    streamed = run("stream", demo.endpoint, "textgen", "--inputs", json.dumps({"text_input": [HOSTILE_WORDS], "stream": [True]}),
                   token=demo.token)
    assert streamed.returncode == 0, streamed.stderr
    assert not raw_controls(streamed.stdout + streamed.stderr), streamed.stdout
    words = "".join(json.loads(line)["outputs"][0]["data"][0] for line in streamed.stdout.splitlines() if json.loads(line)["outputs"])
    assert "\x9b2J" in words and "\u202eb" in words  # still valid JSON holding exactly what the server sent


def test_generate_and_stream_piped_into_head_end_quietly(demo: DemoServer) -> None:
    env = {**os.environ, "EASNB_TOKEN": demo.token}
    for command in (
        ["generate", demo.endpoint, "textgen", "a b c d e f g h", "--param", "delay_ms=30"],
        ["stream", demo.endpoint, "textgen", "--parameter", "delay_ms=30", "--inputs", '{"text_input": ["a b c d e f"], "stream": [true]}'],
    ):
        proc = subprocess.Popen([sys.executable, "-m", "easnb", *command], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
        try:
            proc.stdout.read(1)  # type: ignore[union-attr]  # `| head -c1`: read a little, then leave
            proc.stdout.close()  # type: ignore[union-attr]
            code = proc.wait(30)
            error = proc.stderr.read().decode()  # type: ignore[union-attr]
        finally:
            proc.kill()
        assert code == 141 and error == "", (command[0], code, error)  # was: "easnb stream failed: BrokenPipeError"


def test_generate_refuses_a_param_that_is_a_flag(demo: DemoServer) -> None:
    for pair in ("timeout=1", "temperature=0.5", "max_tokens=3"):
        done = run("generate", demo.endpoint, "textgen", "hi", "--param", pair, token=demo.token)
        assert done.returncode == 2 and "not a sampling setting" in done.stderr, done.stderr  # was 1, a TypeError


def test_stream_inputs_convert_without_loss_or_are_refused(demo: DemoServer) -> None:
    for inputs, says in (('{"text_input": ["x"], "stream": ["false"]}', "holds text"),  # was: sent as True
                         ('{"text_input": ["x"], "exclude_input_in_output": [0.5]}', "lose the fractional part"),  # was: 0
                         ('{"text_input": ["x"], "stream": [2]}', "only 0 and 1")):
        refused = run("stream", demo.endpoint, "textgen", "--inputs", inputs, token=demo.token)
        assert refused.returncode == 1 and says in refused.stderr and refused.stdout == "", (inputs, refused.stderr)
        assert "Traceback" not in refused.stderr
    ragged = run("stream", demo.endpoint, "textgen", "--inputs", '{"text_input": ["x"], "stream": [[true], [true, false]]}',
                 token=demo.token)
    assert ragged.returncode == 2 and "not a rectangular array of BOOL" in ragged.stderr  # was: "ValueError: ..."
    fine = run("stream", demo.endpoint, "textgen", "--inputs", '{"text_input": ["x y"], "stream": [true], '
               '"exclude_input_in_output": [1]}', token=demo.token)
    assert fine.returncode == 0 and json.loads(fine.stdout.splitlines()[-1])["final"] is True
