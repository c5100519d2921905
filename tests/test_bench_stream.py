"""bench/stream.py runs, briefly, against PyTriton's tritonserver, so it cannot rot; its figures stay out of tests."""

from __future__ import annotations

import pytest

from .test_bench import pytriton_ready, run_bench

pytestmark = [pytest.mark.timeout(600), pytest.mark.serial("triton")]  # PyTriton cleans /tmp/folder* it did not have


def test_stream_bench_runs_against_triton() -> None:
    pytriton_ready()
    out = run_bench("bench/stream.py", "--quick")
    groups = out.split("\n\n")[1:]  # one table per group, each contender against its own baseline
    assert [g.splitlines()[0].split(" (")[0] for g in groups] == ["one call per request", "one call per request, asyncio",
                                                                  "one long-lived stream"]
    for group, contenders in zip(groups, (("bare stub, call per request", "easnb conn.stream", "easnb conn.generate"),
                                          ("bare grpc.aio stub, call per request", "easnb.aio stream", "easnb.aio generate"),
                                          ("bare stub, one long-lived call", "easnb open_stream", "tritonclient start_stream"))):
        rows = group.splitlines()[2:5]
        assert [r[:38].strip() for r in rows] == list(contenders)
        assert rows[0].split()[-4] == "1.000" and rows[0].split()[-1] == "+0.0"  # the baseline against itself
    assert "TTFT us" in out and "client CPU/token us" in out and "machine:" in out
