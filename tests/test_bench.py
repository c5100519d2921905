"""Every bench script runs, briefly, so none can rot; the figures themselves stay out of tests.
Also easnb against a real Triton server (the C++ one in nvidia-pytriton, with bench/'s identity backend)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import easnb

from .conftest import python_with_tritonclient

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.timeout(600), pytest.mark.serial("triton")]  # Triton's work folder (bench/triton.py)


def pytriton_ready() -> None:
    venv = Path(os.environ.get("EASNB_PYTRITON_VENV", ROOT / ".cache" / "pytriton-venv"))
    if not (venv / "bin" / "python").exists():
        if os.environ.get("CI"):
            pytest.fail("the nvidia-pytriton venv is missing: .ci/run makes it")
        pytest.skip("nvidia-pytriton is not installed here (.ci/run makes .cache/pytriton-venv)")


def run_bench(*args: str) -> str:
    run = subprocess.run([python_with_tritonclient(), *args], cwd=ROOT, capture_output=True, text=True, timeout=500)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return run.stdout


def test_codec_bench_runs() -> None:
    out = run_bench("bench/codec.py", "--quick")
    assert "easnb encode+decode" in out and "BYTES strings" in out and "to DataFrame" in out


def test_throughput_bench_runs_against_the_demo() -> None:
    out = run_bench("bench/throughput.py", "--server", "demo", "--quick")
    assert "bare stub" in out and "easnb conn.infer" in out and "easnb.aio" in out


def test_load_bench_runs_against_the_demo() -> None:
    out = run_bench("bench/load.py", "--quick", "--against", str(ROOT))
    assert "against" in out and "concurrency 1:" in out and "infer/s" in out and "errors [0]" in out


def test_benches_run_against_triton() -> None:
    pytriton_ready()
    out = run_bench("bench/throughput.py", "--server", "triton", "--quick")
    assert "easnb infer_frame" in out and "tritonclient" in out
    out = run_bench("bench/large.py", "--quick")
    assert "loopback TCP echo (C)" in out and "gRPC alone" in out and "easnb conn.infer" in out


def test_easnb_against_a_real_triton_server() -> None:
    pytriton_ready()
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from triton import triton_server
    finally:
        sys.path.remove(str(ROOT / "bench"))
    with triton_server() as endpoint, easnb.connect(endpoint) as conn:
        assert conn.server_metadata().name == "triton"
        assert {m.name for m in conn.models()} == {"identity_fp32", "identity_bytes"}  # Triton's RepositoryIndex
        assert conn.model_ready("identity_fp32") and conn.model_ready("nope") is False
        x = np.arange(12, dtype=np.float32).reshape(3, 4)
        np.testing.assert_array_equal(conn.infer("identity_fp32", {"INPUT0": x})["OUTPUT0"], x)
        texts = np.array([b"a", b"", b"\x00\xff"], dtype=object)
        assert conn.infer("identity_bytes", {"INPUT0": texts})["OUTPUT0"].tolist() == texts.tolist()
        frame = __import__("pandas").DataFrame(np.random.default_rng(0).random((5000, 4), dtype=np.float32),
                                               columns=[f"INPUT0_{i}" for i in range(4)])
        scored = conn.infer_frame("identity_fp32", frame, batch_size=700, concurrency=8, progress=False)
        np.testing.assert_array_equal(scored.to_numpy(), frame.to_numpy())
        found = conn.discover()
        assert found.v2 and found.ready and found.server.name == "triton"
