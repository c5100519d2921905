"""What the command line prints from a server shows control characters as escapes, never raw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from easnb.terminal import visible, visible_json

from .kitchen import Kitchen

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = "a\x1b]0;owned\x07\x1b[2J\x9b31m\u202etxt\u2028\x7f\u200b\U000e0001"
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\u2028", "\x7f", "\u200b", "\U000e0001")


def test_visible_escapes_each_control_character() -> None:
    assert visible(HOSTILE) == "a\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u202etxt\\u2028\\x7f\\u200b\\U000e0001"
    assert visible("plain é ü 中文 text") == "plain é ü 中文 text"  # printable text as it is


def hidden(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs")]


@given(st.text())
def test_any_text_comes_out_printable(text: str) -> None:
    assert hidden(visible(text)) == []
    data = json.dumps({"k": text}, ensure_ascii=False, indent=2)
    assert json.loads(visible_json(data)) == {"k": text}  # still the same JSON
    assert set(hidden(visible_json(data))) <= {"\n"}


@pytest.fixture(scope="module")
def kitchen() -> Iterator[Kitchen]:
    pytest.importorskip("grpc_reflection")
    server = Kitchen()
    yield server
    server.stop()


def cli(*args: str, token: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "easnb", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "EASNB_TOKEN": token})


def test_call_prints_a_hostile_reply_as_valid_escaped_json(kitchen: Kitchen) -> None:
    done = cli("call", kitchen.endpoint, "kitchen.Kitchen/Echo", "--data", json.dumps({"f_string": HOSTILE}))
    assert done.returncode == 0, done.stderr
    assert not any(c in done.stdout for c in RAW)
    assert json.loads(done.stdout)["f_string"] == HOSTILE


def test_errors_from_the_server_are_escaped(kitchen: Kitchen) -> None:
    done = cli("call", kitchen.endpoint, f"kitchen.Kitchen/{HOSTILE}", "--data", "{}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert not any(c in done.stderr for c in RAW) and "\\x1b[2J" in done.stderr


def test_metadata_and_ping_escape_what_a_v2_server_says() -> None:
    from easnb.demo import DemoServer
    from easnb.demo.models import Model
    from easnb.results import ModelMetadata, TensorMetadata

    meta = ModelMetadata("evil", ("1",), HOSTILE, (TensorMetadata("x" + HOSTILE, "FP32", (-1,)),), (),
                         {"note": HOSTILE, HOSTILE: "key"})
    with DemoServer(models={"evil": Model(meta, lambda x, types: {})}) as server:
        shown = cli("metadata", server.endpoint, "evil", token=server.token)
    assert shown.returncode == 0, shown.stderr
    assert not any(c in shown.stdout for c in RAW) and shown.stdout.count("\\x1b[2J") == 4


WAIT_SERVER = """
import sys
from concurrent import futures
import grpc
def refuse(request, context):
    context.abort(grpc.StatusCode.UNAVAILABLE, sys.argv[1])
server = grpc.server(futures.ThreadPoolExecutor(4))
handler = grpc.unary_unary_rpc_method_handler(refuse)
server.add_generic_rpc_handlers([
    grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {m: handler for m in ("ServerReady", "ModelReady")}),
    grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": handler}),
])
print(server.add_insecure_port("127.0.0.1:0"), flush=True)
server.start()
server.wait_for_termination()
"""


def test_wait_shows_a_servers_refusals_escaped_as_it_goes() -> None:
    """``easnb wait``'s progress lines printed each refusal's details raw: the server retitled the terminal."""
    server = subprocess.Popen([sys.executable, "-c", WAIT_SERVER, HOSTILE], stdout=subprocess.PIPE, text=True)
    try:
        port = server.stdout.readline().strip()  # type: ignore[union-attr]
        done = cli("wait", f"127.0.0.1:{port}", "--wait", "2")
    finally:
        server.kill()
        server.wait()
    assert done.returncode == 1 and done.stderr.startswith("waiting for "), done.stderr
    assert not any(c in done.stderr + done.stdout for c in RAW) and "\\x1b[2J" in done.stderr.splitlines()[0], done.stderr
