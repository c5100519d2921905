"""The token never shows: not in a repr, str, error, log record, CLI output, HTML, widget state or notebook."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys

import nbformat
import numpy as np
import pandas as pd
import pytest

import easnb
import easnb.aio
from easnb.demo import DemoServer, auth, serve

from .conftest import TOKEN


def test_no_surface_shows_the_token(demo: DemoServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger().setLevel(logging.DEBUG)
    seen: list[str] = []

    def show(*things: object) -> None:
        for thing in things:
            seen.extend([repr(thing), str(thing)])
            if hasattr(thing, "_repr_html_"):
                seen.append(thing._repr_html_())

    conn = easnb.connect(demo.endpoint, token=TOKEN)
    show(conn, conn.endpoint, conn.server_metadata(), conn.model_metadata("iris"))
    result = conn.infer("iris", pd.DataFrame(np.ones((3, 4), np.float32)))
    show(result, result.to_frame())
    show(conn.service("protos/helloworld.proto", "helloworld.GreeterService"))
    for bad in (TOKEN + "x", "x" + TOKEN):
        with pytest.raises(easnb.EasnbError) as info:
            easnb.connect(demo.endpoint, token=bad).live()
        show(info.value, info.value.details, info.value.hint)
    with pytest.raises(easnb.EasnbError) as info:
        conn.infer("iris", {"features": np.zeros((1, 3), np.float32)})
    show(info.value)
    with pytest.raises(easnb.EasnbError) as info:
        easnb.connect(demo.endpoint, token=TOKEN + " with space")
    show(info.value)
    aconn = easnb.aio.connect(demo.endpoint, token=TOKEN)
    show(aconn)
    asyncio.run(aconn.live())
    widget = easnb.ConnectionWidget(endpoint=demo.endpoint)
    widget.token_field._handle_custom_msg({"type": "connect", "token": TOKEN}, [])
    widget.wait(10)
    show(widget, widget.get_state(), widget.token_field.get_state(), widget.status.value)
    bench = easnb.inspect(widget)
    bench.infer.model_field.value = "iris"
    bench.infer.fill_example()
    bench.infer.run(wait=True)
    bench.service.inspector.call(wait=True)
    view = bench.tabs.children[-1]
    for flavour in ("easnb", "tritonclient", "grpcurl"):
        view.flavour.value = flavour
        show(view.show_code())
    todo = [bench]
    while todo:  # every widget under the workbench: state and HTML
        current = todo.pop()
        getattr(current, "wait", lambda _: None)(10)
        show(current.get_state(), getattr(current, "value", ""))
        todo.extend(getattr(current, "children", ()))
    show(bench.history.to_frame().to_string(), bench.history._repr_html_(), easnb.doctor(demo.endpoint, TOKEN))
    show(conn.infer_frame("iris", pd.DataFrame(np.ones((40, 4), np.float32)), batch_size=10, progress=False))
    with easnb.connect("127.0.0.1:1", token=TOKEN, timeout=2, retries=2) as refused:  # retried, then refused: INFO records
        with pytest.raises(easnb.UnavailableError) as info:
            refused.live()
        show(info.value)
    show(*[r.getMessage() for r in caplog.records], caplog.text, *[repr(vars(r)) for r in caplog.records])
    easnb_records = [r for r in caplog.records if r.name == "easnb"]
    assert {"ServerLive", "ModelInfer"} <= {getattr(r, "method", "") for r in easnb_records}  # the records were made
    assert any(r.levelno == logging.INFO and "trying again" in r.getMessage() for r in easnb_records)
    conn.close()
    show(conn)
    leaks = [text[:200] for text in seen if TOKEN in text]
    assert not leaks
    assert len(seen) > 40


def test_cli_output_never_shows_the_token(demo: DemoServer) -> None:
    env = {**os.environ, "EASNB_TOKEN": TOKEN}
    for args in (["ping", demo.endpoint], ["metadata", demo.endpoint, "iris"],
                 ["infer", demo.endpoint, "text", "--inputs", '{"TEXT": ["a"]}']):
        run = subprocess.run([sys.executable, "-m", "easnb", *args], capture_output=True, text=True, env=env, timeout=60)
        assert run.returncode == 0 and TOKEN not in run.stdout + run.stderr
    run = subprocess.run([sys.executable, "-m", "easnb", "ping", demo.endpoint, "--token", TOKEN + "z"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and TOKEN not in run.stdout + run.stderr


def test_saved_notebook_never_holds_the_token(demo: DemoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbclient import NotebookClient

    monkeypatch.setenv("EASNB_TOKEN", TOKEN)
    monkeypatch.setenv("EASNB_ENDPOINT", demo.endpoint)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in (
        "import easnb, numpy as np\nconn = easnb.connect()\nconn",
        "w = easnb.ConnectionWidget()\nw.connect(wait=True)\nw",
        "easnb.inspect(conn)",
        "conn.infer('iris', {'features': np.ones((2, 4), np.float32)})",
        "try:\n    easnb.connect(token='wrong').live()\nexcept easnb.EasnbError as e:\n    print(e)",
        "import logging; logging.basicConfig(level=logging.DEBUG); conn.live()",
    )]
    NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=True).execute()
    text = nbformat.writes(nb)
    assert "application/vnd.jupyter.widget-state+json" in text and "UNAUTHENTICATED" in text
    assert TOKEN not in text


def test_token_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = auth.hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", recording)
    assert auth.check_authorization([("authorization", "Bearer right")], "right") is None
    assert auth.check_authorization([("authorization", "Bearer wrong")], "right")
    assert auth.check_authorization([("authorization", "Bearer w")], "right")
    assert len(calls) == 3  # every token comparison goes through hmac.compare_digest


def test_demo_binds_loopback_by_default() -> None:
    with serve() as server:
        assert server.host == "127.0.0.1" and server.endpoint.startswith("127.0.0.1:")
        assert len(server.token) >= 24 and server.token not in repr(server)
