"""Call latency and scoring throughput against a local demo server, every contender in one run.

    python bench/throughput.py

The demo runs as its own process on 127.0.0.1. Prints median and p99 latency of a
small add_sub call for a bare stub (grpc + the protobuf classes, no easnb), easnb's
``conn.infer`` and tritonclient, and rows/s of ``infer_frame`` against bare-stub futures
at the same depth, with ratios to the bare stub.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

import grpc
import numpy as np
import pandas as pd

import easnb
from easnb._proto import ModelInferRequest, ModelInferResponse
from easnb.connection import channel_options
from easnb.demo.models import IRIS_FEATURES

TOKEN = "bench-token"
METADATA = (("authorization", f"Bearer {TOKEN}"),)


def start_demo() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "easnb", "demo", "--port", str(port), "--token", TOKEN],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    proc.stdout.readline()  # type: ignore[union-attr]
    return proc, f"127.0.0.1:{port}"


def bare_infer(stub, a: np.ndarray, b: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    request = ModelInferRequest(model_name="add_sub")
    for name in ("INPUT0", "INPUT1"):
        request.inputs.add(name=name, datatype="INT32", shape=list(a.shape))
    request.raw_input_contents.extend([a.tobytes(), b.tobytes()])
    reply = stub(request, metadata=METADATA, timeout=5)
    return np.frombuffer(reply.raw_output_contents[0], np.int32).reshape(a.shape)


def latencies(call, n: int = 2000) -> list[float]:  # type: ignore[no-untyped-def]
    for _ in range(100):
        call()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1e6)
    return out


def bare_frame(stub, frame: pd.DataFrame, batch_size: int, depth: int) -> None:  # type: ignore[no-untyped-def]
    """Score ``frame`` with raw protobuf futures, ``depth`` in flight: the floor for infer_frame."""
    done: queue.Queue = queue.Queue()
    starts = list(range(0, len(frame), batch_size))[::-1]
    inflight = 0
    values = frame.to_numpy(np.float32)
    while starts or inflight:
        while starts and inflight < depth:
            start = starts.pop()
            chunk = values[start : start + batch_size]
            request = ModelInferRequest(model_name="iris")
            request.inputs.add(name="features", datatype="FP32", shape=list(chunk.shape))
            request.raw_input_contents.append(chunk.tobytes())
            stub.future(request, metadata=METADATA, timeout=30).add_done_callback(done.put)
            inflight += 1
        reply = done.get().result()
        np.frombuffer(reply.raw_output_contents[0], np.float32)
        labels, raw, pos = [], reply.raw_output_contents[1], 0  # the BYTES output, decoded by hand
        while pos < len(raw):
            (length,) = struct.unpack_from("<I", raw, pos)
            labels.append(raw[pos + 4 : pos + 4 + length])
            pos += 4 + length
        inflight -= 1


def main() -> int:
    proc, endpoint = start_demo()
    try:
        conn = easnb.connect(endpoint, token=TOKEN)
        channel = grpc.insecure_channel(endpoint, channel_options())
        stub = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                   request_serializer=ModelInferRequest.SerializeToString,
                                   response_deserializer=ModelInferResponse.FromString)
        a = np.arange(16, dtype=np.int32).reshape(1, 16)
        rows = [("bare stub", latencies(lambda: bare_infer(stub, a, a)))]
        rows.append(("easnb conn.infer", latencies(lambda: conn.infer("add_sub", {"INPUT0": a, "INPUT1": a})["OUTPUT0"])))
        try:
            import tritonclient.grpc as tc

            client = tc.InferenceServerClient(endpoint)

            def triton() -> None:
                inputs = [tc.InferInput(n, [1, 16], "INT32") for n in ("INPUT0", "INPUT1")]
                for i in inputs:
                    i.set_data_from_numpy(a)
                client.infer("add_sub", inputs, headers=dict(METADATA)).as_numpy("OUTPUT0")

            rows.append(("tritonclient", latencies(triton)))
        except ImportError:
            pass
        base = statistics.median(rows[0][1])
        print("small-call latency (add_sub, 2000 calls; target: easnb within 1.05x of the bare stub)")
        for name, values in rows:
            median, p99 = statistics.median(values), float(np.percentile(values, 99))
            print(f"  {name:<20} median {median:7.1f} us  p99 {p99:7.1f} us  {median / base:5.2f}x")

        frame = pd.DataFrame(np.random.default_rng(0).random((200_000, 4), dtype=np.float32), columns=IRIS_FEATURES)
        print("\ninfer_frame rows/s (200k iris rows, batches of 1000; target: at least 0.90x of bare futures)")
        for depth in (1, 8, 64):
            start = time.perf_counter()
            bare_frame(stub, frame, 1000, depth)
            bare = len(frame) / (time.perf_counter() - start)
            start = time.perf_counter()
            conn.infer_frame("iris", frame, batch_size=1000, concurrency=depth, progress=False)
            ours = len(frame) / (time.perf_counter() - start)
            print(f"  depth {depth:>2}: bare {bare:10,.0f} rows/s   easnb {ours:10,.0f} rows/s   {ours / bare:5.2f}x")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
