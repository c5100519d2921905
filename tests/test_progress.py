"""Progress lines: a bar that ends in success is full and green; without a terminal, whole lines."""

from __future__ import annotations

import subprocess
import sys

import pytest

from easnb.demo import DemoServer
from easnb.progress import Waiting

from .conftest import TOKEN, free_port


def notebook_bar(ok: bool) -> tuple[int, int, str]:
    tqdm_notebook = pytest.importorskip("tqdm.notebook").tqdm
    with Waiting("deploying grpc_test", timeout=900, bar=tqdm_notebook) as line:
        line.update("Creating 0/1")
        line.update("Running 1/1")
        if ok:
            line.done()
    _, progress, text = line._bar.container.children
    assert text.value.replace("\u2007", " ").endswith("deploying grpc_test: 00:00, Running 1/1")
    return progress.value, progress.max, progress.bar_style


def test_a_bar_that_ends_well_is_full_and_green() -> None:
    value, most, style = notebook_bar(ok=True)
    assert value == most == 900 and style == "success"


def test_a_bar_that_ends_badly_is_red() -> None:
    value, most, style = notebook_bar(ok=False)
    assert value < most and style == "danger"


def test_easnb_wait_without_a_terminal_writes_whole_lines() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "easnb", "wait", f"127.0.0.1:{port}", "--model", "iris", "--wait", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={"EASNB_TOKEN": TOKEN, "PATH": ""},
    )
    try:
        first = proc.stderr.readline()  # type: ignore[union-attr]  # nothing listens yet
        with DemoServer(token=TOKEN, port=port):
            out, rest = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "model iris ready" in out, first + rest
    stderr = first + rest
    lines = stderr.split("\n")
    assert "\r" not in stderr and stderr.endswith("\n") and lines[-1] == ""
    assert lines[0].startswith("waiting for model iris: 00:0") and "UNAVAILABLE" in lines[0]
    assert lines[-2].startswith("waiting for model iris: 00:") and lines[-2].endswith("model iris ready (done)")
    assert len(set(lines[:-1])) == len(lines) - 1  # a line per change, not per poll


def test_infer_frames_bar_without_a_terminal_writes_whole_lines(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = """
import numpy as np, pandas as pd, easnb
from easnb.demo import DemoServer
with DemoServer(token="t") as d, easnb.connect(d.endpoint, token="t") as c:
    df = pd.DataFrame(np.ones((3000, 4), np.float32), columns=["sepal_length", "sepal_width", "petal_length", "petal_width"])
    print(len(c.infer_frame("iris", df, batch_size=100)))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "3000", out.stderr
    lines = out.stderr.split("\n")
    assert "\r" not in out.stderr and lines[-1] == "" and "3000/3000" in lines[-2] and lines[-2].startswith("scoring: 100%")
    assert len(lines) <= 4  # the first line, the last, and one per QUIET_S between
