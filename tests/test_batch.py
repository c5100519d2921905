"""Scoring whole frames: aligned, complete under failures, cancellable; async; Dask."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import zlib

import grpc
import numpy as np
import pandas as pd
import pytest

import easnb
import easnb.aio
from easnb.batch import BatchError
from easnb.demo import DemoServer
from easnb.demo.models import IRIS_FEATURES, load_iris
from easnb.demo.server import Abort, V2Service, v2_handler



@pytest.fixture(scope="module")
def iris_rows() -> pd.DataFrame:
    x, _ = load_iris()
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(x[rng.integers(0, 150, 200_000)] + rng.normal(0, 0.05, (200_000, 4)).astype(np.float32),
                         columns=IRIS_FEATURES)
    frame.index = pd.Index(np.arange(200_000) * 7 + 3, name="row")
    return frame


@pytest.mark.parametrize("concurrency", [1, 3, 5])  # the overlapping workers (few) and the plain ones (many)
def test_every_worker_kind_puts_each_row_back_in_its_place(conn: easnb.Connection, iris_rows: pd.DataFrame, concurrency: int) -> None:
    rows = iris_rows.iloc[:20_000]
    scored = conn.infer_frame("iris", rows, batch_size=700, concurrency=concurrency, progress=False)
    assert scored.index.equals(rows.index)
    whole = conn.infer("iris", rows).to_frame()
    np.testing.assert_array_equal(scored.filter(like="prob").to_numpy(), whole.filter(like="prob").to_numpy())
    assert (scored["label"].to_numpy() == whole["label"].to_numpy()).all()


def test_200k_rows_equal_row_by_row(conn: easnb.Connection, iris_rows: pd.DataFrame) -> None:
    scored = conn.infer_frame("iris", iris_rows, batch_size=5000, concurrency=8, progress=False)
    assert scored.index.equals(iris_rows.index)
    whole = conn.infer("iris", iris_rows).to_frame()
    np.testing.assert_array_equal(scored.filter(like="prob").to_numpy(), whole.filter(like="prob").to_numpy())
    for position in np.random.default_rng(1).integers(0, len(iris_rows), 200):
        one = conn.infer("iris", iris_rows.iloc[position : position + 1])
        assert scored["label"].iloc[position] == one["label"][0].decode()
        np.testing.assert_array_equal(scored.iloc[position, :3].to_numpy(np.float32), one["probabilities"][0])


class Flaky(V2Service):
    """The demo, failing a chosen share of ModelInfer calls: some forever, some once."""

    def __init__(self, share: float, permanent: set[int]) -> None:
        super().__init__()
        self.share, self.permanent = share, permanent
        self.calls: dict[int, int] = {}
        self.lock = threading.Lock()

    def model_infer(self, data: bytes) -> bytes:
        request, _ = __import__("easnb.inference", fromlist=["x"]).decode_request(data)
        first = int(request.id) if request.id else zlib.crc32(data) % 10_000
        with self.lock:
            self.calls[first] = self.calls.get(first, 0) + 1
            attempt = self.calls[first]
        if first in self.permanent:
            raise Abort(grpc.StatusCode.UNAVAILABLE, "injected outage")
        if attempt == 1 and (zlib.crc32(data) % 100) < self.share * 100:
            raise Abort(grpc.StatusCode.UNAVAILABLE, "injected transient failure")
        return super().model_infer(data)


def test_every_row_scored_or_reported_under_failures() -> None:
    frame = pd.DataFrame({"a": np.arange(10_000, dtype=np.float32)}, index=np.arange(10_000) * 2)
    frame = frame.assign(b=0.0, c=0.0, d=0.0).set_axis(list(IRIS_FEATURES), axis=1)
    service = Flaky(share=0.3, permanent=set())
    bad_value = 4321.0  # batches holding this value fail every time
    original = service.model_infer

    def model_infer(data: bytes) -> bytes:
        if np.float32(bad_value).tobytes() in data:
            raise Abort(grpc.StatusCode.UNAVAILABLE, "injected outage")
        return original(data)

    service.model_infer = model_infer  # type: ignore[method-assign]
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(16), handlers=[v2_handler(service)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with easnb.connect(f"127.0.0.1:{port}") as conn:
            with pytest.raises(BatchError) as info:
                conn.infer_frame("iris", frame, batch_size=100, concurrency=16, retries=3, progress=False)
            error = info.value
            failed_rows = {r for f in error.failures for r in range(f.start, f.stop)}
            assert failed_rows == set(range(4300, 4400))  # only the batch with the bad value
            assert error.partial.index.is_unique and len(error.partial) == 9_900
            assert set(error.partial.index) | set(frame.index[sorted(failed_rows)]) == set(frame.index)
            kept = conn.infer_frame("iris", frame, batch_size=100, concurrency=16, retries=3, progress=False, errors="keep")
            assert kept.index.equals(frame.index)
            assert kept["error"].notna().sum() == 100 and "injected outage" in kept["error"].dropna().iloc[0]
            assert kept.drop(columns="error").dropna().shape[0] == 9_900
    finally:
        server.stop(None)


def test_interrupt_cancels_promptly(demo: DemoServer) -> None:
    frame = pd.DataFrame({"seconds": np.full(64, 5.0)})
    with easnb.connect(demo.endpoint, token=demo.token, timeout=30) as conn:
        conn.model_metadata("sleepy")
        timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
        timer.start()
        started = time.monotonic()
        try:
            with pytest.raises(KeyboardInterrupt):
                conn.infer_frame("sleepy", frame, batch_size=1, concurrency=8, progress=False)
        finally:
            timer.cancel()
        assert time.monotonic() - started < 1.6  # interrupted at 0.5 s, out within a second


def test_progress_bar_counts_rows(conn: easnb.Connection, capsys: pytest.CaptureFixture[str]) -> None:
    frame = pd.DataFrame(np.ones((50, 4), np.float32), columns=IRIS_FEATURES)
    conn.infer_frame("iris", frame, batch_size=10, progress=True)
    assert "50/50" in capsys.readouterr().err


def test_async_inside_a_running_loop(demo: DemoServer) -> None:
    async def main() -> list[int]:
        async with easnb.aio.connect(demo.endpoint, token=demo.token) as conn:
            assert await conn.live() and await conn.ready() and await conn.model_ready("iris")
            assert (await conn.model_metadata("iris")).inputs[0].name == "features"
            with pytest.raises(easnb.NotFoundError):
                await conn.model_metadata("nope")
            frame = pd.DataFrame([[5.1, 3.5, 1.4, 0.2]], columns=IRIS_FEATURES)
            assert (await conn.infer("iris", frame))["label"].tolist() == [b"setosa"]
            assert easnb.connect(demo.endpoint, token=demo.token).live()  # the sync API inside a loop
            results = await asyncio.gather(*[
                conn.infer("add_sub", {"INPUT0": np.full((1, 16), i, np.int32), "INPUT1": np.zeros((1, 16), np.int32)})
                for i in range(20)
            ])
            return [int(r["OUTPUT0"][0, 0]) for r in results]

    assert asyncio.run(main()) == list(range(20))


def test_async_in_a_notebook_cell(demo: DemoServer) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import easnb.aio\n"
        f"conn = easnb.aio.connect({demo.endpoint!r}, token={demo.token!r})\n"
        "print(await conn.live(), (await conn.server_metadata()).name)\n"
        "import easnb\nprint(easnb.connect(conn.settings).ready())"
    )]
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    assert nb.cells[0].outputs[0]["text"].split() == ["True", "easnb-demo", "True"]


def test_dask_local_cluster_two_workers(demo: DemoServer, iris_rows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    dd = pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("distributed")
    from easnb.dask import infer_partitions

    monkeypatch.setenv("EASNB_DEMO_TOKEN", demo.token)  # workers inherit it; the graph never holds it
    frame = iris_rows.iloc[:20_000]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as cluster, distributed.Client(cluster):
        ddf = dd.from_pandas(frame, npartitions=8)
        scored = infer_partitions(ddf, demo.endpoint, "iris", token_env="EASNB_DEMO_TOKEN", batch_size=1000)
        graph = repr(dict(scored.__dask_graph__()))
        assert demo.token not in graph
        result = scored.compute()
    assert result.index.equals(frame.index)
    direct = easnb.connect(demo.endpoint, token=demo.token).infer("iris", frame).to_frame()
    assert (result["label"].to_numpy() == direct["label"].to_numpy()).all()


def test_async_connection_made_outside_the_loop(demo: DemoServer) -> None:
    conn = easnb.aio.connect(demo.endpoint, token=demo.token)
    assert asyncio.run(conn.live()) is True  # the channel opens inside the running loop
    with pytest.raises(easnb.EasnbError, match="another event loop"):
        asyncio.run(conn.live())


def test_async_model_ready_of_an_unknown_model_is_false(demo: DemoServer) -> None:
    async def run() -> tuple[bool, bool]:
        async with easnb.aio.connect(demo.endpoint, token=demo.token) as conn:
            return await conn.model_ready("nope"), await conn.model_ready("iris")

    assert asyncio.run(run()) == (False, True)
