"""bench/perf_analyzer.py runs (briefly), so the comparison with Triton's perf_analyzer cannot rot.
The figures stay in the README; this only checks both tools measured every level and were judged."""

from __future__ import annotations

import ctypes.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .test_bench import pytriton_ready

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(600)


def test_load_test_beside_perf_analyzer() -> None:
    pytriton_ready()
    if ctypes.util.find_library("b64") is None and not Path("/usr/lib/x86_64-linux-gnu/libb64.so.0d").exists():
        if os.environ.get("CI"):
            pytest.fail("libb64-0d is missing: .ci/run installs it")
        pytest.skip("perf_analyzer needs Debian's libb64-0d")
    run = subprocess.run([sys.executable, "bench/perf_analyzer.py", "--quick"], cwd=ROOT, capture_output=True, text=True,
                         timeout=500, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if re.match(r"\| [12] \|", line)]
    assert len(rows) == 2, run.stdout
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[1].replace(",", "")) > 0 and float(cells[2].replace(",", "")) > 0  # both tools measured
        assert cells[-1] in ("within 10%", "client-limited, flagged", "perf_analyzer saturated (not judged)", "MISS")
    assert "target" in run.stdout
