"""A streamed token's outputs (``StreamOutputs``, arrays made when first asked for) behave exactly as the dict
a fully decoded reply gives: every way a user reads, copies or changes a dict, from any thread, and no more memory."""

from __future__ import annotations

import json
import threading
import tracemalloc
from typing import Any

import numpy as np
import pandas as pd
import pytest

from easnb.streaming import Reader
from .test_stream_plans import token

NUMBERS = np.array([1.5], np.float32)


def pair(copy: bool = False) -> tuple[Any, Any]:
    """The same token read from a learned layout (arrays not made yet) and decoded in full."""
    reader = Reader("triton", "gen", copy, False)
    reader.read(token(b" first", numbers=NUMBERS))
    lazy, _, _ = reader.read(token(b" tok", numbers=NUMBERS))
    full, _, _ = Reader("triton", "gen", copy, False).read(token(b" tok", numbers=NUMBERS))
    assert lazy is not None and full is not None
    assert type(lazy.outputs).__name__ == "StreamOutputs" and not lazy.outputs.made and type(full.outputs) is dict
    return lazy, full


def same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and (a.equals(b) if isinstance(a, (pd.DataFrame, pd.Series)) else repr(a) == repr(b))


def outcome(use: Any, outputs: Any) -> Any:
    """What ``use`` gives, or the error it raises (its type and text)."""
    try:
        return use(outputs)
    except Exception as exc:  # noqa: BLE001 - the error is what is compared
        return (type(exc), str(exc))


def keywords(**arrays: Any) -> list[str]:
    return list(arrays)


USES = {
    "pandas.DataFrame": pd.DataFrame,  # was: a one-column frame of the outputs' names
    "pandas.Series": pd.Series,
    "DataFrame.from_dict": pd.DataFrame.from_dict,
    "dict": dict,
    "**": lambda o: {**o},
    "keywords": lambda o: keywords(**o),
    "dict.update": lambda o: (lambda d: (d.update(o), d)[1])({}),
    "dict |": lambda o: {"a": 1} | o,
    "| dict": lambda o: o | {"a": 1},
    ".copy()": lambda o: o.copy(),
    "reversed": lambda o: list(reversed(o)),
    "isinstance dict": lambda o: isinstance(o, dict),
    "json default": lambda o: json.dumps(o, default=lambda a: a.tolist() if isinstance(a, np.ndarray) else repr(a)),
    "items": lambda o: [(k, v.tolist()) for k, v in o.items()],
    "values": lambda o: [v.tolist() for v in o.values()],
    "len and bool": lambda o: (len(o), bool(o), "text_output" in o, "nope" in o),
    "json": lambda o: json.dumps(o),  # was: "{}" (C reads the size) once a dict; TypeError for an ndarray is right
    "json no indent": lambda o: json.dumps(o, default=lambda a: a.tolist()),
    "json indent": lambda o: json.dumps(o, indent=1, default=lambda a: a.tolist()),
    "== the full": lambda o: o == dict(pair()[1].outputs),
    "!= the full": lambda o: o != dict(pair()[1].outputs),
    "== another token": lambda o: o == pair()[0].outputs,
    "set and read": lambda o: (o.__setitem__("extra", np.arange(2)), list(o), o["extra"].tolist(), len(o))[1:],
    "pop": lambda o: (o.pop("finish_reason").tolist(), list(o)),
    "setdefault": lambda o: (o.setdefault("x", 1), o.setdefault("text_output", 2).tolist(), list(o)),
    "clear": lambda o: (o.clear(), list(o), len(o), "text_output" in o),
    "del": lambda o: (o.__delitem__("text_output"), list(o), "text_output" in o, o.get("text_output")),
    "popitem": lambda o: (o.popitem()[0], len(o)),
    "|=": lambda o: (o.__ior__({"y": 0}), list(o))[1],
    "fromkeys": lambda o: type(o).fromkeys(["a"], 0),
    "type(outputs)(...)": lambda o: type(o)(o, extra=1),
    "IPython display": lambda o: __import__("IPython.lib.pretty").lib.pretty.pretty(o, max_width=40),  # was: one line  # was: a StreamOutputs with nothing set (AttributeError)
}


@pytest.mark.parametrize("use", USES)
def test_a_token_s_outputs_behave_as_the_full_decode_s_dict(use: str) -> None:
    lazy, full = pair()
    assert same(outcome(USES[use], lazy.outputs), outcome(USES[use], full.outputs))
    assert use in ("set and read", "pop", "setdefault", "clear", "del", "popitem", "|=") or lazy.to_json() == full.to_json()


def test_the_results_dataclass_helpers_see_the_arrays() -> None:
    """dataclasses.asdict makes each dict field with type(field)(...) (was: AttributeError on a token's outputs)."""
    import dataclasses

    lazy, full = pair()
    assert repr(dataclasses.asdict(lazy)) == repr(dataclasses.asdict(full))
    assert repr(dataclasses.replace(lazy, id="x").outputs) == repr(full.outputs)


def test_two_threads_asking_at_once_get_the_same_arrays() -> None:
    """Made once: a thread's array is the one every thread sees (was: each could make its own, and a write to
    one of them was lost)."""
    big = np.zeros(1_000_000, np.float32)
    reader = Reader("triton", "gen", True, False)
    reader.read(token(b" first", numbers=big))
    for _ in range(20):
        result, _, _ = reader.read(token(b" tok", numbers=big))
        assert result is not None and not result.outputs.made
        seen: list[int] = []
        start = threading.Barrier(2)

        def read() -> None:
            start.wait()
            array = result["num_output_tokens"]
            array[0] += 1  # copy=True: writable
            seen.append(id(array))

        threads = [threading.Thread(target=read) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(seen)) == 1 and result["num_output_tokens"][0] == 2


@pytest.mark.parametrize(("copy", "numbers"), [(True, True), (False, False)])
def test_a_read_token_does_not_also_keep_its_reply(copy: bool, numbers: bool) -> None:
    """Once a token's arrays are made, its reply's bytes are let go unless an array is a view of them: results kept
    (as stream.responses keeps them) cost what the fully decoded ones do, not twice that."""
    size = 1 << 20
    reader = Reader("triton", "gen", copy, False)

    def reply() -> bytes:
        if numbers:
            return token(b" t", numbers=np.zeros(size // 4, np.float32))
        return token(b"x" * size)

    reader.read(reply())
    tracemalloc.start()
    try:
        kept = []
        for _ in range(16):
            result, _, _ = reader.read(reply())
            assert result is not None and type(result.outputs).__name__ == "StreamOutputs"
            result["text_output"]
            kept.append(result)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 16 * size * 1.3, held  # was: about 2x (the bytes and the arrays)
    assert all(r.outputs.text("text_output") in (" t", "x" * size) for r in kept)
