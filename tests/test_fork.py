"""A connection used before ``fork`` works in the child (a multiprocessing pool with the fork start method).

Every wait on a child is bounded here, so a regression fails instead of hanging the suite.

These tests run in a pytest process of their own (``test_in_a_process_of_its_own`` starts it):
a fork copies gRPC's state while other threads are inside gRPC, and the full suite's process
holds dozens of servers, channels and grpc.aio's poller from earlier tests. gRPC then skips its
fork handlers ("Other threads are currently calling into gRPC") and a child crashed now and then
in CI (``ev_epoll1_linux.cc: Check failed``) for reasons that belong to the suite, not to what
a notebook holds: one connection and, at most, one demo server.
"""

from __future__ import annotations

import _thread
import asyncio
import gc
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import easnb
import easnb.aio
from easnb.demo.models import IRIS_FEATURES, load_iris
from easnb.loop import BackgroundLoop

from .conftest import TOKEN

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
#: Set in the pytest process of its own that runs these tests.
ALONE = "EASNB_FORK_TESTS_ALONE"

#: What gRPC prints when a fork finds threads inside gRPC: it skips its fork handlers, and the child
#: then works on gRPC state copied mid-use (it crashed now and then: grpc/grpc#37710).
SKIPPED_HANDLERS = "skipping fork() handlers"
#: The connection the forked workers use: inherited through fork, as a notebook's global is.
SHARED: dict[str, Any] = {}
STREAMED = {"text_input": np.array([b"a b c"], dtype=object), "stream": np.array([True])}


def _iris() -> pd.DataFrame:
    x, _ = load_iris()
    return pd.DataFrame(x, columns=IRIS_FEATURES)


def _in_child(what: str) -> Any:
    conn: easnb.Connection = SHARED["conn"]
    started = time.monotonic()
    try:
        if what == "infer_frame":
            answer: Any = conn.infer_frame("iris", _iris(), batch_size=16, concurrency=4, progress=False, timeout=5)
        elif what == "infer":
            answer = conn.infer("iris", {"features": _iris().to_numpy(np.float32)}, timeout=5)["probabilities"].copy()
        elif what == "sleepy":
            answer = conn.infer("sleepy", {"seconds": np.array([3.0])}, timeout=0.5)
        elif what == "service":  # a service client made in the parent
            answer = SHARED["greeter"].SayHello(name="child").message
        elif what == "generate":  # a server stream, on the sync channel
            answer = "".join(conn.generate("textgen", "hello"))
        elif what == "stream":  # each token's arrays made
            answer = [r["text_output"].tolist() for r in conn.stream("textgen", STREAMED, timeout=5)]
        elif what == "new connection":  # made in the child: its background loop cannot be grpc.aio
            with easnb.connect(SHARED["endpoint"], token=SHARED["token"]) as fresh:
                answer = fresh.infer_frame("iris", _iris(), batch_size=16, progress=False)
        elif what == "load_test":
            report = conn.load_test("iris", {"features": _iris().to_numpy(np.float32)[:4]}, concurrency=[2], seconds=0.5,
                                    warmup=0.1, progress=False)
            answer = int(report.frame.iloc[0]["requests"])
        elif what == "opened in the handler":  # nothing may call into gRPC inside the fork handler
            answer = (conn.channel._channel is not None, conn.live())
        elif what == "aio":
            async def ask() -> bool:
                async with easnb.aio.connect(SHARED["endpoint"], token=SHARED["token"]) as aconn:
                    return await aconn.live()

            answer = asyncio.run(ask())
        else:
            answer = conn.live()
    except easnb.EasnbError as exc:
        answer = exc
    return answer, time.monotonic() - started


def _pool_run(*jobs: str) -> list[tuple[Any, float]]:
    """Run ``jobs`` one after another on two forked workers; a worker that dies fails the test at
    once (``BrokenProcessPool``) instead of leaving its task unanswered."""
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
    try:
        return [pool.submit(_in_child, job).result(timeout=30) for job in jobs]
    finally:
        workers = list(getattr(pool, "_processes", {}).values())  # a hung worker must not hang shutdown
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.kill()
            worker.join(5)


def test_in_a_process_of_its_own() -> None:
    if os.environ.get(ALONE):
        pytest.skip("this is the process of its own")
    env = {**os.environ, ALONE: "1", "GRPC_VERBOSITY": "INFO"}  # the control below reads an INFO line of gRPC's
    command = [sys.executable, "-m", "pytest", "tests/test_fork.py", "-q", "-s", "-p", "no:cacheprovider", "-o", "addopts=-ra"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
    # every fork there took gRPC's supported path (the one that skips it on purpose reads its own output)
    assert SKIPPED_HANDLERS not in done.stderr + done.stdout, done.stderr[-3000:]


alone = pytest.mark.skipif(not os.environ.get(ALONE), reason="runs in a process of its own: test_in_a_process_of_its_own")


#: The demo server in a process of its own, as a notebook's service is: a server in the forking
#: process has threads inside gRPC at every fork, and a child then crashed now and then (an abseil
#: mutex check) for a reason of the test's making.
SERVER = """
import sys
sys.path.insert(0, sys.argv[1])
from tests.conftest import TOKEN, sleepy_model
from easnb.demo import DemoServer
from easnb.demo.models import all_models
with DemoServer(token=TOKEN, models={**all_models(), "sleepy": sleepy_model()}) as server:
    print(server.endpoint, flush=True)
    sys.stdin.read()
"""


@pytest.fixture(scope="module")
def remote() -> Iterator[str]:
    """The endpoint of a demo server in another process (the test's ``sleepy`` model included)."""
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(Path(__file__).parents[1])], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        yield server.stdout.readline().strip()
    finally:
        server.stdin.close()
        server.wait(10)


@pytest.fixture()
def shared(remote: str) -> Iterator[easnb.Connection]:
    with easnb.connect(remote, token=TOKEN) as conn:
        SHARED.update(conn=conn, endpoint=remote, token=TOKEN)
        yield conn
    SHARED.clear()


@alone
def test_infer_frame_then_infer_frame_and_infer_in_a_forked_worker(shared: easnb.Connection) -> None:
    parent = shared.infer_frame("iris", _iris(), batch_size=16, concurrency=4, progress=False)
    (frame, frame_s), (probabilities, infer_s), (again, _) = _pool_run("infer_frame", "infer", "infer_frame")
    assert isinstance(frame, pd.DataFrame) and frame.equals(parent)
    assert again.equals(parent)
    np.testing.assert_array_equal(probabilities, parent.filter(like="prob").to_numpy(np.float32))
    assert frame_s < 10 and infer_s < 10
    # the parent's own connection still works, background loop included
    assert shared.infer_frame("iris", _iris(), batch_size=16, progress=False).equals(parent)
    assert shared.live()


@alone
def test_the_rest_of_a_connection_works_in_a_forked_worker(shared: easnb.Connection) -> None:
    parent = shared.infer_frame("iris", _iris(), batch_size=16, progress=False)
    SHARED["greeter"] = shared.service("helloworld.GreeterService")
    said = "".join(shared.generate("textgen", "hello"))
    (hello, _), (generated, _), (fresh, _), (requests, seconds) = _pool_run("service", "generate", "new connection", "load_test")
    assert hello == "Hello, child!" and generated == said
    assert isinstance(fresh, pd.DataFrame) and fresh.equals(parent)
    assert requests > 0 and seconds < 10


@alone
def test_a_call_in_a_forked_worker_keeps_its_deadline(shared: easnb.Connection) -> None:
    shared.infer_frame("iris", _iris(), progress=False)
    ((error, seconds),) = _pool_run("sleepy")
    assert isinstance(error, easnb.DeadlineError)
    assert seconds < 0.5 + 2  # the deadline plus a small margin, never a hang


@alone
def test_grpc_aio_in_a_child_of_a_process_where_it_ran_is_a_clear_error(shared: easnb.Connection) -> None:
    shared.infer_frame("iris", _iris(), progress=False)  # grpc.aio runs in this process now
    ((error, seconds),) = _pool_run("aio")
    assert isinstance(error, easnb.EasnbError) and "fork" in str(error) and "spawn" in error.hint
    assert seconds < 5


@alone
def test_a_closed_connection_stays_closed_in_the_child(shared: easnb.Connection) -> None:
    shared.close()
    ((error, _),) = _pool_run("live")
    assert isinstance(error, easnb.EasnbError) and "closed" in error.message


def _fork_is_clean(capfd: pytest.CaptureFixture[str]) -> bool:
    """Fork a child that exits at once: whether gRPC ran its own fork handlers (it prints when it skips them)."""
    capfd.readouterr()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return SKIPPED_HANDLERS not in capfd.readouterr().err


@contextmanager
def _collector_off() -> Iterator[None]:
    """As in a notebook where the garbage collector has not come round yet."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@alone
def test_after_infer_frame_a_fork_takes_grpcs_supported_path(shared: easnb.Connection, capfd: pytest.CaptureFixture[str]) -> None:
    """Before a fork, an idle background loop lets its grpc.aio channel go, so grpc.aio's poller thread
    ends and gRPC runs its own fork handlers (with the poller inside gRPC it skips them, and a child
    then crashed inside gRPC now and then: grpc/grpc#37710). A loop busy at the fork keeps its channel."""
    parent = shared.infer_frame("iris", _iris(), batch_size=16, progress=False)
    shared.load_test("iris", {"features": _iris().to_numpy(np.float32)[:4]}, concurrency=[2], seconds=0.2, warmup=0.1,
                     progress=False)
    assert _fork_is_clean(capfd)
    assert shared.infer_frame("iris", _iris(), batch_size=16, progress=False).equals(parent)  # opened again

    background, started = shared.background(), threading.Event()

    async def hold() -> None:
        started.set()
        await asyncio.sleep(1)

    busy = threading.Thread(target=background.run, args=(hold(),))
    busy.start()
    assert started.wait(10)
    assert not _fork_is_clean(capfd)  # the control: gRPC says so when a thread is inside it
    busy.join(10)
    assert shared.infer_frame("iris", _iris(), batch_size=16, progress=False).equals(parent)


@alone
def test_after_a_failed_or_interrupted_infer_frame_a_fork_takes_grpcs_supported_path(
    shared: easnb.Connection, capfd: pytest.CaptureFixture[str]
) -> None:
    """What still held the closed grpc.aio channel (so grpc.aio's poller stayed inside gRPC and the fork skipped
    gRPC's handlers): a failed call's error and its traceback's frames, which hold each other until the garbage
    collector comes round; and after Ctrl-C, the run's tasks, still ending on the loop and kept by the
    KeyboardInterrupt's traceback (a notebook keeps it in ``sys.last_traceback``)."""
    with _collector_off():
        with pytest.raises(easnb.BatchError):
            shared.infer_frame("sleepy", pd.DataFrame({"seconds": [1.0] * 4}), batch_size=1, progress=False, timeout=0.2)
        assert _fork_is_clean(capfd)

        threading.Timer(0.5, _thread.interrupt_main).start()  # Ctrl-C
        try:
            shared.infer_frame("sleepy", pd.DataFrame({"seconds": [0.3] * 40}), batch_size=1, concurrency=4,
                               progress=False, timeout=5)
        except KeyboardInterrupt:
            assert _fork_is_clean(capfd)  # at once: Ctrl-C returns before the run's tasks on the loop have ended
        else:
            pytest.fail("not interrupted")
    assert len(shared.infer_frame("iris", _iris(), batch_size=16, progress=False)) == 150


@alone
def test_a_connection_closed_after_a_failed_infer_frame_lets_a_fork_take_grpcs_supported_path(
    remote: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """Closed, a background loop still held its grpc.aio channel (so grpc.aio's poller stayed inside gRPC and
    forks skipped gRPC's handlers): through a failed call's reference cycle until the collector came round,
    and for good when the error was kept (a notebook keeps it in ``sys.last_value``): its frames hold the loop."""
    with _collector_off():
        for keep in (False, True):
            conn = easnb.connect(remote, token=TOKEN)
            with pytest.raises(easnb.BatchError) as failed:
                conn.infer_frame("sleepy", pd.DataFrame({"seconds": [1.0] * 4}), batch_size=1, progress=False, timeout=0.2)
            kept = failed.value if keep else None
            del failed
            conn.close()
            assert _fork_is_clean(capfd), f"error kept: {keep}"
    assert isinstance(kept, easnb.BatchError)


@alone
def test_a_closed_async_connection_still_named_lets_a_fork_take_grpcs_supported_path(
    remote: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """``async with easnb.aio.connect(...) as aconn`` leaves ``aconn`` bound (in a notebook, for good): closed, it
    still held its grpc.aio channel, so grpc.aio's poller stayed inside gRPC and every later fork skipped gRPC's handlers."""

    async def use() -> easnb.aio.AsyncConnection:
        async with easnb.aio.connect(remote, token=TOKEN) as aconn:
            assert await aconn.live()
            await aconn.infer("iris", {"features": np.ones((2, 4), np.float32)})
            with pytest.raises(easnb.DeadlineError):  # its error and frames hold each other (and the channel) until collected
                await aconn.infer("sleepy", {"seconds": np.array([1.0])}, timeout=0.2)
        return aconn

    with _collector_off():
        aconn = asyncio.run(use())
        assert _fork_is_clean(capfd)
    assert aconn.closed


@alone
def test_a_kept_error_of_a_closed_async_connection_lets_a_fork_take_grpcs_supported_path(
    remote: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """A notebook keeps a cell's error (``sys.last_value``): the frames of an ``easnb.aio`` call's error held the
    call's stub, so the channel, closed or not, and grpc.aio's poller stayed inside gRPC at every later fork."""

    async def fail() -> list[easnb.EasnbError]:
        kept = []
        async with easnb.aio.connect(remote, token=TOKEN) as aconn, easnb.aio.connect(remote, token="not-it") as refused:
            for ask in (lambda: aconn.infer("sleepy", {"seconds": np.array([1.0])}, timeout=0.2),
                        lambda: aconn.model_metadata("no-such-model"), refused.models):  # V2 calls, a plan's step
                try:
                    await ask()
                except easnb.EasnbError as exc:
                    kept.append(exc)
        return kept

    kept = asyncio.run(fail())
    assert _fork_is_clean(capfd)
    assert [type(e) for e in kept] == [easnb.DeadlineError, easnb.NotFoundError, easnb.AuthenticationError]


@alone
def test_a_stub_taken_before_the_loop_let_its_channel_go_still_calls(shared: easnb.Connection) -> None:
    conn = shared
    from easnb.calls import CALLS
    from easnb.inference import decode_response, encode_request

    request = encode_request("iris", {"features": np.ones((2, 4), np.float32)})
    background = conn.background()
    stub = background.stub(CALLS["ModelInfer"].path)
    background.release_for_fork()
    assert background.channel is None

    async def ask() -> bytes:  # a stub is called in the loop, as infer_frame's batches and load tests call it
        return await stub(request, timeout=5, metadata=conn.metadata)  # type: ignore[no-any-return]

    reply = background.run(ask())
    assert decode_response(reply).outputs["probabilities"].shape == (2, 3)
    assert background.channel is not None


@alone
def test_a_wait_on_a_loop_whose_thread_is_gone_ends(shared: easnb.Connection) -> None:
    conn = shared  # not the suite's in-process demo: a server in this process would make every later fork unsafe
    runner = BackgroundLoop(conn.settings, conn.channel)
    runner.loop.call_soon_threadsafe(runner.loop.stop)
    runner._thread.join(5)
    started = time.monotonic()
    coroutine = asyncio.sleep(60)
    with pytest.raises(easnb.EasnbError, match="background event loop"):
        runner.run(coroutine)
    coroutine.close()
    assert time.monotonic() - started < 3


@alone
def test_with_grpcs_fork_support_turned_off_a_child_fails_in_bounded_time_and_says_why() -> None:
    code = """
import multiprocessing, time, numpy as np, easnb
from easnb.demo import DemoServer
SHARED = {}
def child(_):
    started = time.monotonic()
    try:
        SHARED["conn"].infer("iris", {"features": np.ones((2, 4), np.float32)}, timeout=1)
        return "ok", time.monotonic() - started
    except easnb.EasnbError as exc:
        return type(exc).__name__ + "|" + exc.hint, time.monotonic() - started
with DemoServer(token="t") as server, easnb.connect(server.endpoint, token="t") as conn:
    conn.infer("iris", {"features": np.ones((2, 4), np.float32)})
    SHARED["conn"] = conn
    pool = multiprocessing.get_context("fork").Pool(1)
    print(repr(pool.apply_async(child, (0,)).get(timeout=30)))
    pool.terminate()
"""
    env = {**os.environ, "GRPC_ENABLE_FORK_SUPPORT": "0"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    said, seconds = eval(done.stdout.strip().splitlines()[-1])  # noqa: S307 - our own subprocess's repr of a tuple
    assert seconds < 1 + 2  # the deadline plus the margin, never a hang
    if said != "ok":  # gRPC cannot work in this child: the error says why and what to do
        assert said.startswith("DeadlineError|GRPC_ENABLE_FORK_SUPPORT=0 turns off") and "spawn" in said


@alone
def test_the_fork_handler_opens_no_channel(shared: easnb.Connection) -> None:
    """Opening a channel inside ``after_in_child`` crashed children now and then (SIGSEGV in
    ``insecure_channel`` seen in a full CI run, with many connections alive): the child's channel
    is opened on its first call instead."""
    shared.infer_frame("iris", _iris(), progress=False)
    with easnb.connect(SHARED["endpoint"], token=SHARED["token"]) as other:  # more than one connection to rebuild
        other.live()
        ((answer, _),) = _pool_run("opened in the handler")
    assert answer == (False, True)


@alone
def test_a_forked_worker_learns_stream_layouts_of_its_own(shared: easnb.Connection) -> None:
    """The connection's learned stream layouts stay with the parent: one whose lock another thread held at the fork
    (making a token's arrays) would be held in the child for ever, and its first token's arrays would hang."""
    said = [r["text_output"].tolist() for r in shared.stream("textgen", STREAMED)]
    (plan, *_) = shared.stream_plans["textgen"]
    with plan.making:  # as another thread making a token's arrays at the fork
        ((streamed, seconds),) = _pool_run("stream")
    assert streamed == said and seconds < 10
