"""easnb infer --inputs: JSON values reach the model as the numbers they are or a one-line usage error
naming the input (a fraction for an INT32 input was truncated silently by np.asarray(dtype=int32);
a list or ragged rows printed numpy's or Python's exception)."""

from __future__ import annotations

import json

import pytest

from easnb.demo import DemoServer

from .test_cli import run

ONES = [[1] * 16]


def infer(demo: DemoServer, model: str, inputs: object) -> tuple[int, str, str]:
    done = run("infer", demo.endpoint, model, "--inputs", json.dumps(inputs), token=demo.token)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize(("inputs", "words"), [
    ({"INPUT0": [[1.5] + [1] * 15], "INPUT1": ONES}, "would lose the fractional part"),
    ({"INPUT0": [[None] + [1] * 15], "INPUT1": ONES}, "'INPUT0' (sent as INT32) has a missing value"),
    ({"INPUT0": [[10**10] + [1] * 15], "INPUT1": ONES}, "do not fit INT32"),
    ({"INPUT0": [[1] * 16, [1]], "INPUT1": ONES}, "input 'INPUT0' is not a rectangular array of INT32 values"),
    ([1, 2], "--inputs must be a JSON object of input name -> values, not a JSON list"),
])
def test_a_value_the_input_cannot_take_is_named(demo: DemoServer, inputs: object, words: str) -> None:
    code, out, err = infer(demo, "add_sub", inputs)
    assert code != 0 and words in err and "Traceback" not in err and "failed: " not in err
    assert "OUTPUT0" not in out


def test_numbers_reach_the_model_as_they_are(demo: DemoServer) -> None:
    code, out, err = infer(demo, "add_sub", {"INPUT0": [[2.0] + [1] * 15], "INPUT1": ONES})
    assert code == 0, err
    assert "[[3 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2]]" in out
    quoted = infer(demo, "iris", {"features": [["5.1", 3.5, 1.4, 0.2]]})
    plain = infer(demo, "iris", {"features": [[5.1, 3.5, 1.4, 0.2]]})
    assert quoted[0] == 0 and quoted[1] == plain[1] and "setosa" in plain[1]


def test_a_misspelt_method_gets_the_nearest_not_a_model_hint() -> None:
    from .kitchen import Kitchen

    kitchen = Kitchen()
    try:
        done = run("call", kitchen.endpoint, "kitchen.Kitchen/Ecoh", "-d", "{}")
        other = run("call", kitchen.endpoint, "kitchen.Kitchen/Zzz", "-d", "{}")
    finally:
        kitchen.server.stop(None)
    assert done.returncode == 1 and "has no method 'Ecoh'" in done.stderr
    assert "Did you mean kitchen.Kitchen/Echo?" in done.stderr and "ModelMetadata" not in done.stderr
    assert f"easnb list {kitchen.endpoint} kitchen.Kitchen shows its methods" in other.stderr
