"""Triton's statistics extension on the wire: tritonclient reads the demo's ModelStatistics, and easnb
reads a real Triton server's (the C++ core in nvidia-pytriton, with bench/'s identity backend)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import easnb
from easnb.demo import DemoServer

from .conftest import python_with_tritonclient
from .test_bench import pytriton_ready

ROOT = Path(__file__).resolve().parents[1]

READ = """
import json, sys
import tritonclient.grpc as grpcclient
client = grpcclient.InferenceServerClient(sys.argv[1])
token = {"authorization": "Bearer " + sys.argv[2]}
stats = client.get_inference_statistics("iris", headers=token, as_json=True)
print(json.dumps(stats))
"""


def test_tritonclient_reads_the_demo_statistics(conn: easnb.Connection, demo: DemoServer) -> None:
    conn.infer("iris", {"features": np.ones((2, 4), np.float32)})
    run = subprocess.run([python_with_tritonclient(), "-c", READ, demo.endpoint, demo.token],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    (model,) = json.loads(run.stdout)["model_stats"]
    infer = model["inference_stats"]
    assert model["name"] == "iris" and int(model["inference_count"]) >= 2 and int(model["execution_count"]) >= 1
    assert int(infer["success"]["count"]) >= 1 and int(infer["compute_infer"]["ns"]) > 0
    assert int(infer["queue"]["count"]) == int(infer["success"]["count"])


@pytest.mark.serial("triton")  # Triton's work folder (bench/triton.py)
def test_easnb_reads_triton_statistics() -> None:
    pytriton_ready()
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from triton import triton_server
    finally:
        sys.path.remove(str(ROOT / "bench"))
    with triton_server() as endpoint, easnb.connect(endpoint) as conn:
        conn.infer("identity_fp32", {"INPUT0": np.ones((1, 16), np.float32)})
        stats = {(s.name, s.version) for s in conn.model_statistics()}
        assert ("identity_fp32", "1") in stats and ("identity_bytes", "1") in stats
        (one,) = conn.model_statistics("identity_fp32")
        assert set(one.durations) >= {"success", "queue", "compute_infer"}
        report = conn.load_test("identity_fp32", {"INPUT0": np.ones((1, 16), np.float32)}, concurrency=[1], seconds=0.5,
                                warmup=0.1, progress=False)
        assert report.split and report.levels[0].requests > 50
