"""bench/stream.py runs, briefly, against PyTriton's tritonserver, so it cannot rot; its figures stay out of tests."""

from __future__ import annotations

import pytest

from .test_bench import pytriton_ready, run_bench

pytestmark = pytest.mark.timeout(600)


def test_stream_bench_runs_against_triton() -> None:
    pytriton_ready()
    out = run_bench("bench/stream.py", "--quick")
    for contender in ("bare generated stub", "easnb conn.stream", "easnb conn.generate", "easnb.aio stream", "tritonclient start_stream"):
        assert contender in out
    assert "TTFT us" in out and "client CPU/token us" in out and "machine:" in out
