"""easnb's streams against MLServer's streaming runtime (predict_stream, parallel_workers: 0): one start per module."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import easnb
import easnb.aio

from .conftest import free_port
from .seedparts import stop
from .test_interop_mlserver import ROOT, mlserver_venv

pytestmark = [pytest.mark.mlserver, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    venv = mlserver_venv()
    folder = tmp_path_factory.mktemp("mlserver-stream")
    shutil.copytree(ROOT / "tests" / "mlserver_stream_model", folder / "gen")
    grpc_port, http_port = free_port(), free_port()
    (folder / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port,
        "metrics_endpoint": None, "parallel_workers": 0, "debug": False,
    }))
    log = open(folder / "mlserver.log", "w")
    proc = subprocess.Popen([str(venv / "bin" / "mlserver"), "start", str(folder)], cwd=folder,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"127.0.0.1:{grpc_port}"
    try:
        deadline = time.monotonic() + 90
        with easnb.connect(endpoint, timeout=2, retries=0) as conn:
            while True:
                try:
                    if conn.model_ready("gen"):
                        break
                except easnb.EasnbError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("MLServer did not start:\n" + (folder / "mlserver.log").read_text()[-3000:])
                time.sleep(0.5)
        yield endpoint, folder / "gen" / "cancelled.log"
    finally:
        stop(proc, timeout=20)
        log.close()


@pytest.fixture()
def conn(mlserver: tuple[str, Path]) -> Iterator[easnb.Connection]:
    with easnb.connect(mlserver[0], timeout=20) as connection:
        yield connection


def prompt(text: str, **sampling: object) -> dict[str, np.ndarray]:
    inputs = {"text_input": np.array([text.encode()], dtype=object)}
    if sampling:
        inputs["sampling_parameters"] = np.array([json.dumps(sampling).encode()], dtype=object)
    return inputs


def test_tokens_as_text_and_the_end_of_the_call(conn: easnb.Connection) -> None:
    stream = conn.stream("gen", prompt("hello mlserver"), request_id="m-1")
    texts = [r["text_output"].reshape(-1)[0] for r in stream]
    assert texts == [" You", " said:", " hello", " mlserver."]  # content_type: str decodes without bytes_as_str
    assert stream.finished and len(stream.arrivals) == 4 and conn.stream_flavour == "mlserver"
    assert all(r.id == "m-1" for r in stream.responses)


def test_generate_reads_the_metadata(conn: easnb.Connection) -> None:
    g = conn.generate("gen", "one two three", max_tokens=4).finish()
    assert g.text == " You said: one two" and g.finish_reason == "length" and g.tokens == 4


def test_error_mid_stream(conn: easnb.Connection) -> None:
    with pytest.raises(easnb.ServerError) as caught:
        conn.stream("gen", prompt("please fail"), request_id="bad-3").collect()
    assert caught.value.code.name == "INTERNAL" and "failed on purpose" in caught.value.details
    assert caught.value.request_id == "bad-3" and len(caught.value.received) == 2


def test_zero_responses(conn: easnb.Connection) -> None:
    # MLServer 1.7's handler reads the last response to set trailers, so a request that produced none
    # fails on its side (UnboundLocalError -> INTERNAL): easnb says so, with nothing received
    with pytest.raises(easnb.ServerError) as caught:
        conn.stream("gen", prompt("x", max_tokens=0), request_id="z").collect()
    assert caught.value.code.name == "INTERNAL" and caught.value.received == () and caught.value.request_id == "z"


def test_several_requests_behind_one_api(conn: easnb.Connection) -> None:
    texts = ["a b", "c", "fail now", "d e f"]
    with conn.open_stream("gen") as shared:
        streams = [shared.submit(prompt(t, delay_ms=20)) for t in texts]
        answers = []
        for stream in streams:
            try:
                answers.append("".join(r["text_output"].reshape(-1)[0] for r in stream))
            except easnb.ServerError as exc:
                answers.append(exc.request_id)
    assert answers == [" You said: a b.", " You said: c.", streams[2].request_id, " You said: d e f."]
    assert len({s.request_id for s in streams}) == 4
    assert all(r.id == s.request_id for s in streams for r in s.responses)


def test_cancel_is_seen_by_the_server(conn: easnb.Connection, mlserver: tuple[str, Path]) -> None:
    log = mlserver[1]
    stream = conn.stream("gen", prompt("a b c d e f g h", delay_ms=200), request_id="cancel-me")
    for _ in stream:
        break
    ends = time.monotonic() + 10
    while not (log.exists() and "cancel-me" in log.read_text()):
        assert time.monotonic() < ends, "MLServer's model never saw the cancellation"
        time.sleep(0.1)


def test_asyncio_against_mlserver(mlserver: tuple[str, Path]) -> None:
    async def main() -> list[str]:
        async with easnb.aio.connect(mlserver[0], timeout=20) as aconn:
            return [p async for p in aconn.generate("gen", "async too", max_tokens=8)]

    assert asyncio.run(main()) == [" You", " said:", " async", " too."]
