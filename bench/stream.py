"""Streaming: time to first token and client cost per token, every contender interleaved in one run.

    python bench/stream.py            # NVIDIA Triton (PyTriton's tritonserver) with a decoupled model
    python bench/stream.py --quick    # a few requests each: only checks that it runs

Run it with the Python that has tritonclient (``.cache/triton-venv/bin/python``, which .ci/run makes).
The server is bench/stream_server.py's ``gen`` model, answering ``TOKENS`` one-word responses with
no delay. Contenders come in three groups, each measured against its own bare baseline, like for like:

- one call per request, sync: the bare stub is tritonclient's generated ``GRPCInferenceServiceStub``
  (grpc and protobuf classes, nothing else) opening a ``ModelStreamInfer`` call per request, against
  ``conn.stream`` and ``conn.generate``;
- one call per request, asyncio: the same generated stub on a ``grpc.aio`` channel, against
  ``easnb.aio``'s ``stream`` and ``generate``;
- one long-lived stream, every request sent on it: the bare stub on one call fed from a queue,
  against ``conn.open_stream(...).submit`` and tritonclient's ``start_stream`` callback API.

Per contender: the median time to first token (from sending to the first response with text, so
a long-lived stream's set-up is not counted) and the median of its rounds' ratios to its baseline's;
the wall time per token after the first; and the client's CPU time per token (this process's, all
threads), whose excess over the baseline's in the same round (its median over the rounds) is what
the client adds to every token.
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
SYNC, AIO, LONG = "one call per request", "one call per request, asyncio", "one long-lived stream"
#: group -> its baseline, then the contenders measured against it
GROUPS = {
    SYNC: ("bare stub, call per request", "easnb conn.stream", "easnb conn.generate"),
    AIO: ("bare grpc.aio stub, call per request", "easnb.aio stream", "easnb.aio generate"),
    LONG: ("bare stub, one long-lived call", "easnb open_stream", "tritonclient start_stream"),
}


def machine() -> str:
    return f"machine: {os.cpu_count()} cores, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}"


def counted(replies: Any, start: float) -> Timing:
    """Time a request's replies (anything with a length counts as a token; the caller stops at the final one)."""
    first, tokens = 0.0, 0
    for _ in replies:
        tokens += 1
        first = first or time.perf_counter()
    return first - start, time.perf_counter() - start, tokens


def contenders(endpoint: str, loop: asyncio.AbstractEventLoop) -> tuple[dict[str, Callable[[], Timing]], Callable[[], None]]:
    """Each contender makes one request and returns its timing; the second item closes what they opened."""
    import grpc
    import tritonclient.grpc as grpcclient
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    bare_request = service_pb2.ModelInferRequest(model_name="gen")
    for name, value in (("text_input", PROMPT), ("sampling_parameters", SAMPLING)):
        tensor = bare_request.inputs.add(name=name, datatype="BYTES", shape=[1])
        tensor.contents.bytes_contents.append(value.encode())
    bare_request.parameters["triton_enable_empty_final_response"].bool_param = True

    def tokens_of(replies: Any) -> Any:  # the bare contenders' reading: a token per reply with outputs, up to the final one
        for reply in replies:
            response = reply.infer_response
            if response.outputs:
                yield reply
            if response.parameters["triton_final_response"].bool_param:
                return

    channel = grpc.insecure_channel(endpoint)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)

    def bare() -> Timing:
        start = time.perf_counter()
        return counted(tokens_of(stub.ModelStreamInfer(iter((bare_request,)))), start)

    conn = easnb.connect(endpoint, timeout=30)
    inputs = {"text_input": np.array([PROMPT.encode()], dtype=object), "sampling_parameters": np.array([SAMPLING.encode()], dtype=object)}

    def stream() -> Timing:
        start = time.perf_counter()
        return counted(conn.stream("gen", inputs), start)

    def generate() -> Timing:
        start = time.perf_counter()
        return counted(conn.generate("gen", PROMPT, max_tokens=TOKENS), start)

    # asyncio: channels belong to the loop they are made in
    async def aio_open() -> tuple[Any, Any, Any]:
        achannel = grpc.aio.insecure_channel(endpoint)
        return achannel, service_pb2_grpc.GRPCInferenceServiceStub(achannel), easnb.aio.connect(endpoint, timeout=30)

    achannel, astub, aconn = loop.run_until_complete(aio_open())

    async def a_counted(replies: Any, start: float) -> Timing:
        first, tokens = 0.0, 0
        async for _ in replies:
            tokens += 1
            first = first or time.perf_counter()
        return first - start, time.perf_counter() - start, tokens

    async def a_tokens_of(call: Any) -> Any:
        async for reply in call:
            response = reply.infer_response
            if response.outputs:
                yield reply
            if response.parameters["triton_final_response"].bool_param:
                return

    async def a_bare() -> Timing:
        start = time.perf_counter()
        return await a_counted(a_tokens_of(astub.ModelStreamInfer(iter((bare_request,)))), start)

    async def a_stream() -> Timing:
        start = time.perf_counter()
        return await a_counted(await aconn.stream("gen", inputs), start)

    async def a_generate() -> Timing:
        start = time.perf_counter()
        return await a_counted(aconn.generate("gen", PROMPT, max_tokens=TOKENS), start)

    # one long-lived stream each, opened before the rounds
    sends: queue.SimpleQueue[Any] = queue.SimpleQueue()
    long_call = stub.ModelStreamInfer(iter(sends.get, None))

    def bare_long() -> Timing:
        start = time.perf_counter()
        sends.put(bare_request)
        return counted(tokens_of(long_call), start)  # the call is its own iterator: each request reads on from it

    shared = conn.open_stream("gen", timeout=None)

    def open_stream() -> Timing:
        start = time.perf_counter()
        return counted(shared.submit(inputs), start)

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

    def close() -> None:
        sends.put(None)
        long_call.cancel()
        shared.close()
        client.stop_stream()
        client.close()
        conn.close()
        channel.close()

        async def aio_close() -> None:
            await aconn.close()
            await achannel.close()

        loop.run_until_complete(aio_close())

    calls = [bare, stream, generate, lambda: loop.run_until_complete(a_bare()), lambda: loop.run_until_complete(a_stream()),
             lambda: loop.run_until_complete(a_generate()), bare_long, open_stream, tritonclient_callback]
    names = [name for group in GROUPS.values() for name in group]
    return dict(zip(names, calls)), close


def run(contenders: dict[str, Callable[[], Timing]], rounds: int, warmup: int = 3) -> dict[str, dict[str, list[float]]]:
    """Per contender: ttft, per_token (wall, after the first) and cpu_per_token, in microseconds; turns taken request by request."""
    for call in contenders.values():
        for _ in range(warmup):
            call()
    out: dict[str, dict[str, list[float]]] = {name: {"ttft": [], "per_token": [], "cpu_per_token": []} for name in contenders}
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


def medians(results: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    """Per contender: its medians, and its TTFT ratio to and CPU per token over its group's baseline, each the
    median of the rounds' own (a round measures every contender back to back, so the machine's load, which
    drifts over a run, cancels out of a round's ratio and difference)."""
    m = {name: {k: statistics.median(v) for k, v in figures.items()} for name, figures in results.items()}
    for base, *others in GROUPS.values():
        b = results[base]
        for name in (base, *others):
            r = results[name]
            m[name]["x_base"] = statistics.median(t / t0 for t, t0 in zip(r["ttft"], b["ttft"]))
            m[name]["cpu_over_base"] = statistics.median(c - c0 for c, c0 in zip(r["cpu_per_token"], b["cpu_per_token"]))
    return m


def report(m: dict[str, dict[str, float]]) -> None:
    for group, names in GROUPS.items():
        print(f"\n{group} (each against {names[0]!r})")
        print(f"{'contender':38} {'TTFT us':>9} {'x base':>7} {'wall/token us':>14} {'client CPU/token us':>20} {'over base':>10}")
        for name in names:
            f = m[name]
            print(f"{name:38} {f['ttft']:9.0f} {f['x_base']:7.3f} {f['per_token']:14.1f} {f['cpu_per_token']:20.1f} "
                  f"{f['cpu_over_base']:+10.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few requests each: only checks that it runs")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--json", type=Path, help="also write the medians to this file")
    args = parser.parse_args()
    from stream_server import stream_server

    with stream_server() as (endpoint, _):
        print(f"Triton (PyTriton) decoupled model on {endpoint}: {TOKENS} tokens a request, no delay")
        print(machine())
        loop = asyncio.new_event_loop()
        calls, close = contenders(endpoint, loop)
        try:
            results = run(calls, 2 if args.quick else args.rounds, 1 if args.quick else 3)
        finally:
            close()
            loop.close()
        m = medians(results)
        report(m)
        print(machine())
        if args.json:
            args.json.write_text(json.dumps({"load": os.getloadavg(), "rounds": args.rounds, "medians": m}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
