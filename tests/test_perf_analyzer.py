"""bench/perf_analyzer.py runs (briefly), so the comparison with Triton's perf_analyzer cannot rot.
The figures stay in the README; this only checks that the three contenders (perf_analyzer, the bare
Python stub, load_test) measured every level, that each level was judged, and that the verdict line
agrees with the levels' verdicts."""

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
pytestmark = [pytest.mark.timeout(600), pytest.mark.alone, pytest.mark.serial("triton")]  # it measures
VERDICTS = ("met: within 10% of perf_analyzer", "met: client-limited (flagged); within 10% of the bare stub",
            "met: perf_analyzer saturated; within 10% of the bare stub",
            "MISS: client-limited (flagged) and behind the bare stub", "MISS")


def test_load_test_beside_perf_analyzer_and_a_bare_stub() -> None:
    pytriton_ready()
    if ctypes.util.find_library("b64") is None and not Path("/usr/lib/x86_64-linux-gnu/libb64.so.0d").exists():
        if os.environ.get("CI"):
            pytest.fail("libb64-0d is missing: .ci/run installs it")
        pytest.skip("perf_analyzer needs Debian's libb64-0d")
    run = subprocess.run([sys.executable, "bench/perf_analyzer.py", "--quick", "--repeat", "2"], cwd=ROOT, capture_output=True, text=True,
                         timeout=500, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if re.match(r"\| [12] \|", line)]
    assert len(rows) == 2, run.stdout
    verdicts = []
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 14, cells
        assert all(float(cells[i].replace(",", "")) > 0 for i in (1, 2, 3)), cells  # all three measured
        assert all(float(cells[i]) > 0 for i in (6, 7, 8)), cells  # and their p50s
        assert re.fullmatch(r"\d+ \(\d+%\)", cells[11]), cells  # load_test's client CPU per request is shown
        assert cells[12] in ("yes", "no") and cells[13] in VERDICTS, cells
        if cells[13].startswith("met: client-limited"):
            assert cells[12] == "yes"  # met beside the bare stub only where load_test flagged the level
        verdicts.append(cells[13])
    missed = [v for v in verdicts if v.startswith("MISS")]
    assert ("target met at every level" in run.stdout) == (not missed), run.stdout
    assert "the median of 2 runs each" in run.stdout
    for line in [row for row in rows if "| yes |" in row]:
        assert f"concurrency {line.split('|')[1].strip()}: load_test flagged it:" in run.stdout  # the flag's reason
