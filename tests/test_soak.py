"""Load and soak, bounded and on loopback: nothing lost or duplicated, memory flat, nothing leaked.

The normal suite makes 10,000 calls; `pytest --slow tests/test_soak.py` makes 100,000.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import easnb
from easnb.demo import DemoServer

from .conftest import DemoProcess, eventually, free_port

pytestmark = pytest.mark.timeout(900)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def soak(total: int) -> None:
    """``total`` calls from this process to the demo running as its own process."""
    server = DemoProcess(free_port()).start()
    try:
        _soak(server, total)
    finally:
        server.kill()


def _soak(server: DemoProcess, total: int) -> None:
    with easnb.connect(server.endpoint, token=server.TOKEN, timeout=30) as conn:
        seen = np.zeros(total, dtype=np.int64)

        def call(i: int) -> None:
            result = conn.infer("echo", {"i": np.array([i], np.int64)}, request_id=str(i))
            assert result.id == str(i)
            seen[int(result["i"][0])] += 1

        with ThreadPoolExecutor(64) as pool:
            warm = total // 10
            list(pool.map(call, range(warm)))
            gc.collect()
            after_warm_up = rss_bytes()
            list(pool.map(call, range(warm, total)))
        gc.collect()
        growth = (rss_bytes() - after_warm_up) / after_warm_up
        assert (seen == 1).all(), "a call was lost or answered twice"
        assert growth < 0.10, f"resident memory grew {growth:.1%} after warm-up"


def test_load_10k_calls_64_in_flight() -> None:
    soak(10_000)


@pytest.mark.slow
def test_soak_100k_calls_64_in_flight() -> None:
    started = time.monotonic()
    soak(100_000)
    print(f"100k calls in {time.monotonic() - started:.1f} s")


def test_close_leaks_no_threads_or_descriptors(demo: DemoServer) -> None:
    def cycle() -> None:
        with easnb.connect(demo.endpoint, token=demo.token) as conn:
            conn.live()
            conn.infer("echo", {"x": np.zeros(1000)})

    cycle()  # grpc starts its own pollers once per process
    time.sleep(0.5)
    threads, fds = threading.active_count(), open_fds()
    for _ in range(20):
        cycle()
    gc.collect()
    eventually(lambda: threading.active_count() <= threads + 1 and open_fds() <= fds + 2)
