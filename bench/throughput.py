"""Small-call latency and scoring throughput, every contender interleaved in one run.

    python bench/throughput.py --server triton      # NVIDIA Triton's C++ server, identity backend (bench/triton.py)
    python bench/throughput.py --server demo        # easnb's demo, as its own process
    python bench/throughput.py --quick              # a few calls each: only checks that it runs

Run it with a Python that has tritonclient too (``.cache/triton-venv/bin/python``, which .ci/run
makes) to include it. Prints each contender's median and p90 and its ratio to the bare stub
(grpc and the protobuf classes, no easnb) measured in the same rounds, and the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import queue
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import grpc.aio
import numpy as np
import pandas as pd

import easnb
import easnb.aio
from easnb._proto import ModelInferRequest, ModelInferResponse
from easnb.channel import channel_options

sys.path.insert(0, str(Path(__file__).parent))
PATH = "/inference.GRPCInferenceService/ModelInfer"
TOKEN = "bench-token"


@contextlib.contextmanager
def server(kind: str) -> Iterator[tuple[str, str, str]]:
    """``(endpoint, token, model)``: a 1x16 FP32 identity-like model on the chosen server."""
    if kind == "triton":
        from triton import triton_server

        with triton_server() as endpoint:
            yield endpoint, "", "identity_fp32"
        return
    with socket_port() as port:
        proc = subprocess.Popen([sys.executable, "-m", "easnb", "demo", "--port", str(port)], stdout=subprocess.PIPE,
                                text=True, start_new_session=True, env={**os.environ, "EASNB_TOKEN": TOKEN})
    try:
        proc.stdout.readline()  # type: ignore[union-attr]
        yield f"127.0.0.1:{port}", TOKEN, "echo"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()


@contextlib.contextmanager
def socket_port() -> Iterator[int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port


def request(model: str, x: np.ndarray, name: str = "INPUT0") -> ModelInferRequest:
    r = ModelInferRequest(model_name=model)
    r.inputs.add(name=name, datatype="FP32", shape=list(x.shape))
    r.raw_input_contents.append(x.tobytes())
    return r


def output(reply: ModelInferResponse) -> np.ndarray:
    return np.frombuffer(reply.raw_output_contents[0], np.float32).reshape(tuple(reply.outputs[0].shape))


def machine() -> str:
    """The cores and the load the figures were measured under."""
    return f"machine: {os.cpu_count()} cores, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}"


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Microseconds per call, the contenders taking turns call by call."""
    for call in contenders.values():
        for _ in range(max(10, rounds // 20)):
            call()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, call in contenders.items():
            start = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - start) * 1e6)
    return times


def report(title: str, times: dict[str, list[float]], base: str, unit: str = "us") -> None:
    print(title)
    reference = statistics.median(times[base])
    for name, values in times.items():
        median, p90 = statistics.median(values), float(np.percentile(values, 90))
        print(f"  {name:<24} median {median:9.1f} {unit}  p90 {p90:9.1f} {unit}  {median / reference:5.2f}x")


def small_calls(endpoint: str, token: str, model: str, rounds: int) -> None:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    x = np.arange(16, dtype=np.float32).reshape(1, 16)
    name = "INPUT0" if model != "echo" else "x"
    channel = grpc.insecure_channel(endpoint, channel_options())
    stub = channel.unary_unary(PATH, request_serializer=ModelInferRequest.SerializeToString,
                               response_deserializer=ModelInferResponse.FromString)
    conn = easnb.connect(endpoint, token=token or None)
    contenders: dict[str, Callable[[], object]] = {
        "bare stub": lambda: output(stub(request(model, x, name), metadata=metadata, timeout=5)),
        "easnb conn.infer": lambda: conn.infer(model, {name: x})[name if model == "echo" else "OUTPUT0"],
    }
    try:
        import tritonclient.grpc as tc

        client = tc.InferenceServerClient(endpoint)
        headers = dict(metadata) or None

        def triton() -> object:
            i = tc.InferInput(name, [1, 16], "FP32")
            i.set_data_from_numpy(x)
            return client.infer(model, [i], headers=headers).as_numpy(name if model == "echo" else "OUTPUT0")

        contenders["tritonclient"] = triton
    except ImportError:
        print("  (tritonclient is not installed in this Python: run with .cache/triton-venv/bin/python)")
    report(f"small call, 1x16 FP32, {rounds} calls each, interleaved (target: easnb at most 1.03x the bare stub)",
           interleaved(contenders, rounds), "bare stub")
    asyncio.run(small_async(endpoint, token, model, name, x, rounds))
    conn.close()
    channel.close()


async def small_async(endpoint: str, token: str, model: str, name: str, x: np.ndarray, rounds: int) -> None:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    channel = grpc.aio.insecure_channel(endpoint, channel_options())
    stub = channel.unary_unary(PATH, request_serializer=ModelInferRequest.SerializeToString,
                               response_deserializer=ModelInferResponse.FromString)
    conn = easnb.aio.connect(endpoint, token=token or None)
    times: dict[str, list[float]] = {"bare grpc.aio": [], "easnb.aio": []}
    for i in range(rounds + 50):
        for label in times:
            start = time.perf_counter()
            if label == "easnb.aio":
                await conn.infer(model, {name: x})
            else:
                output(await stub(request(model, x, name), metadata=metadata, timeout=5))
            if i >= 50:
                times[label].append((time.perf_counter() - start) * 1e6)
    report("small call with asyncio (target: easnb.aio within 1.03x of bare grpc.aio)", times, "bare grpc.aio")
    await conn.close()
    await channel.close()


def bare_futures(stub, model: str, values: np.ndarray, batch: int, depth: int, metadata) -> None:  # type: ignore[no-untyped-def]
    done: queue.Queue = queue.Queue()
    starts = list(range(0, len(values), batch))[::-1]
    inflight = 0
    while starts or inflight:
        while starts and inflight < depth:
            start = starts.pop()
            stub.future(request(model, values[start : start + batch]), metadata=metadata, timeout=60).add_done_callback(done.put)
            inflight += 1
        output(done.get().result())
        inflight -= 1


def bare_aio(endpoint: str, model: str, values: np.ndarray, batch: int, depth: int, metadata) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        channel = grpc.aio.insecure_channel(endpoint, channel_options())
        stub = channel.unary_unary(PATH, request_serializer=ModelInferRequest.SerializeToString,
                                   response_deserializer=ModelInferResponse.FromString)
        starts = iter(range(0, len(values), batch))

        async def worker() -> None:
            for start in starts:
                output(await stub(request(model, values[start : start + batch]), metadata=metadata, timeout=60))

        await asyncio.gather(*(worker() for _ in range(depth)))
        await channel.close()

    asyncio.run(main())


def frames(endpoint: str, token: str, model: str, rows: int, repeats: int) -> None:
    if model != "identity_fp32":
        print("\n(infer_frame: run with --server triton)")
        return
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    frame = pd.DataFrame(np.random.default_rng(0).random((rows, 4), dtype=np.float32), columns=[f"INPUT0_{i}" for i in range(4)])
    values = frame.to_numpy(np.float32)
    channel = grpc.insecure_channel(endpoint, channel_options())
    stub = channel.unary_unary(PATH, request_serializer=ModelInferRequest.SerializeToString,
                               response_deserializer=ModelInferResponse.FromString)
    conn = easnb.connect(endpoint, token=token or None, timeout=60)
    conn.infer_frame(model, frame.head(1000), progress=False)
    print(f"\ninfer_frame, {rows:,} rows x 4 in batches of 1000, median rows/s (and the median of each round's ratio to bare futures;"
          " targets: 1.2x at 8 and 64 in flight, 1.0x at 1)")
    for depth in (1, 8, 64):
        times: dict[str, list[float]] = {"bare futures": [], "bare grpc.aio": [], "easnb infer_frame": []}
        for _ in range(repeats):
            for label in times:
                start = time.perf_counter()
                if label == "bare futures":
                    bare_futures(stub, model, values, 1000, depth, metadata)
                elif label == "bare grpc.aio":
                    bare_aio(endpoint, model, values, 1000, depth, metadata)
                else:
                    conn.infer_frame(model, frame, batch_size=1000, concurrency=depth, progress=False)
                times[label].append(time.perf_counter() - start)
        # each round's ratio to bare futures in that same round, then the median: slow drifts of the
        # machine cancel out, where a ratio of medians would mix rounds run under different load
        base = times["bare futures"]
        line = "   ".join(
            f"{label} {rows / statistics.median(v) / 1e3:7,.0f}k ({statistics.median(b / x for b, x in zip(base, v)):4.2f}x)"
            for label, v in times.items()
        )
        print(f"  {depth:>2} in flight: {line}")
    conn.close()
    channel.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=["triton", "demo"], default="triton")
    parser.add_argument("--quick", action="store_true", help="a few calls each, to check that it runs")
    args = parser.parse_args(argv)
    rounds, rows, repeats = (30, 5_000, 1) if args.quick else (3000, 200_000, 15)
    print(f"{machine()}; server: {args.server}")
    with server(args.server) as (endpoint, token, model):
        small_calls(endpoint, token, model, rounds)
        frames(endpoint, token, model, rows, repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
