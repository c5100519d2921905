"""Streaming: time to first token and client cost per token, every contender interleaved in one run.

    python bench/stream.py            # NVIDIA Triton (PyTriton's tritonserver) with a decoupled model
    python bench/stream.py --quick    # a few requests each: only checks that it runs

Run it with the Python that has tritonclient (``.cache/triton-venv/bin/python``, which .ci/run makes):
the bare stub is tritonclient's generated ``GRPCInferenceServiceStub`` (grpc and protobuf classes,
nothing else), and tritonclient's own ``start_stream`` callback API is a contender. The server is
bench/stream_server.py's ``gen`` model, answering ``TOKENS`` one-word responses with no delay.

Per contender: the median time to first token (from the call to the first response with text) and
its ratio to the bare stub's in the same rounds; the wall time per token after the first; and the
client's CPU time per token (this process's, all threads), whose excess over the bare stub's is
what the client adds to every token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import easnb
import easnb.aio

sys.path.insert(0, str(Path(__file__).parent))
TOKENS = 64
PROMPT = " ".join(f"w{i}" for i in range(TOKENS - 2))  # " You said: w0 ... w61." is TOKENS words
SAMPLING = json.dumps({"max_tokens": TOKENS})
Timing = tuple[float, float, int]  # (seconds to the first token, seconds for the whole request, tokens)


def machine() -> str:
    return f"machine: {os.cpu_count()} cores, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}"


def contenders(endpoint: str) -> dict[str, Callable[[], Timing]]:
    """Each contender makes one request and returns its timing."""
    import grpc
    import tritonclient.grpc as grpcclient
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    channel = grpc.insecure_channel(endpoint)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    bare_request = service_pb2.ModelInferRequest(model_name="gen")
    for name, value in (("text_input", PROMPT), ("sampling_parameters", SAMPLING)):
        tensor = bare_request.inputs.add(name=name, datatype="BYTES", shape=[1])
        tensor.contents.bytes_contents.append(value.encode())
    bare_request.parameters["triton_enable_empty_final_response"].bool_param = True

    def bare() -> Timing:
        start, first, tokens = time.perf_counter(), 0.0, 0
        for reply in stub.ModelStreamInfer(iter((bare_request,))):
            response = reply.infer_response
            if response.outputs:
                tokens += 1
                first = first or time.perf_counter()
            if response.parameters["triton_final_response"].bool_param:
                break
        return first - start, time.perf_counter() - start, tokens

    conn = easnb.connect(endpoint, timeout=30)
    inputs = {"text_input": np.array([PROMPT.encode()], dtype=object), "sampling_parameters": np.array([SAMPLING.encode()], dtype=object)}

    def stream() -> Timing:
        start, first, tokens = time.perf_counter(), 0.0, 0
        for _ in conn.stream("gen", inputs):
            tokens += 1
            first = first or time.perf_counter()
        return first - start, time.perf_counter() - start, tokens

    def generate() -> Timing:
        start, first, tokens = time.perf_counter(), 0.0, 0
        for _ in conn.generate("gen", PROMPT, max_tokens=TOKENS):
            tokens += 1
            first = first or time.perf_counter()
        return first - start, time.perf_counter() - start, tokens

    loop = asyncio.new_event_loop()
    aconn = easnb.aio.connect(endpoint, timeout=30)

    async def a_stream() -> Timing:
        start, first, tokens = time.perf_counter(), 0.0, 0
        async for _ in await aconn.stream("gen", inputs):
            tokens += 1
            first = first or time.perf_counter()
        return first - start, time.perf_counter() - start, tokens

    client = grpcclient.InferenceServerClient(endpoint)
    arrivals: queue.SimpleQueue[Any] = queue.SimpleQueue()
    client.start_stream(callback=lambda result, error: arrivals.put((time.perf_counter(), result, error)))
    triton_inputs = []
    for name, value in (("text_input", PROMPT), ("sampling_parameters", SAMPLING)):
        tensor = grpcclient.InferInput(name, [1], "BYTES")
        tensor.set_data_from_numpy(np.array([value.encode()], dtype=object))
        triton_inputs.append(tensor)

    def tritonclient_callback() -> Timing:
        start, first, tokens = time.perf_counter(), 0.0, 0
        client.async_stream_infer("gen", triton_inputs, enable_empty_final_response=True)
        while True:
            when, result, error = arrivals.get(timeout=30)
            if error is not None:
                raise RuntimeError(str(error))
            response = result.get_response()
            if response.outputs:
                tokens += 1
                first = first or when
            if response.parameters["triton_final_response"].bool_param:
                return first - start, when - start, tokens

    return {
        "bare generated stub": bare,
        "easnb conn.stream": stream,
        "easnb conn.generate": generate,
        "easnb.aio stream": lambda: loop.run_until_complete(a_stream()),
        "tritonclient start_stream": tritonclient_callback,
    }


def run(contenders: dict[str, Callable[[], Timing]], rounds: int, warmup: int = 3) -> dict[str, dict[str, list[float]]]:
    """Per contender: ttft, per_token (wall, after the first) and cpu_per_token, in microseconds; turns taken request by request."""
    for call in contenders.values():
        for _ in range(warmup):
            call()
    out = {name: {"ttft": [], "per_token": [], "cpu_per_token": []} for name in contenders}
    for i in range(rounds):
        names = list(contenders)
        names = names[i % len(names):] + names[: i % len(names)]  # a different one goes first each round
        for name in names:
            cpu = time.process_time()
            first, total, tokens = contenders[name]()
            cpu = time.process_time() - cpu
            assert tokens == TOKENS, f"{name} got {tokens} tokens"
            out[name]["ttft"].append(first * 1e6)
            out[name]["per_token"].append((total - first) / (tokens - 1) * 1e6)
            out[name]["cpu_per_token"].append(cpu / tokens * 1e6)
    return out


def report(results: dict[str, dict[str, list[float]]]) -> None:
    base = {k: statistics.median(v) for k, v in results["bare generated stub"].items()}
    print(f"{'contender':28} {'TTFT us':>9} {'x bare':>7} {'wall/token us':>14} {'client CPU/token us':>20} {'over bare':>10}")
    for name, figures in results.items():
        m = {k: statistics.median(v) for k, v in figures.items()}
        print(f"{name:28} {m['ttft']:9.0f} {m['ttft'] / base['ttft']:7.3f} {m['per_token']:14.1f} "
              f"{m['cpu_per_token']:20.1f} {m['cpu_per_token'] - base['cpu_per_token']:+10.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few requests each: only checks that it runs")
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    from stream_server import stream_server

    with stream_server() as (endpoint, _):
        print(f"Triton (PyTriton) decoupled model on {endpoint}: {TOKENS} tokens a request, no delay")
        print(machine())
        results = run(contenders(endpoint), 2 if args.quick else args.rounds, 1 if args.quick else 3)
        report(results)
        print(machine())
    return 0


if __name__ == "__main__":
    sys.exit(main())
