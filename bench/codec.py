"""Codec speed, every contender measured in this one run on this machine.

    python bench/codec.py            # with .cache/triton-venv/bin/python to include tritonclient
    python bench/codec.py --quick    # small sizes, once: only checks that it runs

Prints the median seconds of each and its ratio to the floor (memcpy, or the direct
construction), for: a 64 MiB FP32 tensor encoded into a request and decoded from a
reply; 10k and 1M BYTES strings both ways; a 1M-row x 4-output result made into a DataFrame.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from easnb._proto import ModelInferRequest, ModelInferResponse
from easnb.inference import decode_response, encode_request
from easnb.results import InferResult
from easnb.tensors import decode_tensor, encode_tensor


def interleaved(contenders: dict[str, Callable[[], object]], repeat: int = 7) -> list[tuple[str, float, float]]:
    """``(name, median, p90)`` seconds of each contender, taking turns round by round after one warm-up."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return [(name, statistics.median(t), float(np.percentile(t, 90))) for name, t in times.items()]


def reply_with(array: np.ndarray, datatype: str) -> bytes:
    reply = ModelInferResponse(model_name="m")
    reply.outputs.add(name="y", datatype=datatype, shape=list(array.shape))
    reply.raw_output_contents.append(array.tobytes())
    return reply.SerializeToString()


QUICK = "--quick" in sys.argv


def bench_64mb() -> list[tuple[str, float]]:
    x = np.random.default_rng(0).random((1 if QUICK else 16) * 1024 * 1024, dtype=np.float32)
    payload = reply_with(x, "FP32")

    def easnb_path() -> None:
        encode_request("m", {"x": x})
        decode_response(payload)["y"]

    def protobuf_path() -> None:
        request = ModelInferRequest(model_name="m")
        request.inputs.add(name="x", datatype="FP32", shape=[x.size])
        request.raw_input_contents.append(x.tobytes())
        request.SerializeToString()
        reply = ModelInferResponse.FromString(payload)
        np.frombuffer(reply.raw_output_contents[0], np.float32)

    contenders = {
        "memcpy (numpy.copy), the floor": lambda: np.copy(x),
        "easnb encode+decode": easnb_path,
        "protobuf classes encode+decode": protobuf_path,
    }
    try:
        import tritonclient.grpc as tc
        from tritonclient.grpc import _utils, service_pb2

        def triton_path() -> None:
            tin = tc.InferInput("x", [x.size], "FP32")
            tin.set_data_from_numpy(x)
            _utils._get_inference_request(
                model_name="m", inputs=[tin], model_version="", request_id="", outputs=None,
                sequence_id=0, sequence_start=False, sequence_end=False, priority=0, timeout=None, parameters=None,
            ).SerializeToString()
            tc.InferResult(service_pb2.ModelInferResponse.FromString(payload)).as_numpy("y")

        contenders["tritonclient encode+decode"] = triton_path
    except ImportError:
        pass
    return interleaved(contenders)


def bench_bytes(count: int) -> list[tuple[str, float]]:
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 40, count)
    letters = rng.integers(97, 123, int(lengths.sum()), dtype=np.uint8).tobytes()
    ends = np.cumsum(lengths)
    items = np.array([letters[e - n : e] for e, n in zip(ends, lengths)], dtype=object)

    def easnb_path() -> None:
        buffer, _ = encode_tensor(ModelInferRequest().inputs.add(), "s", items)
        decode_tensor("s", "BYTES", [items.size], buffer)

    repeat = 21 if count <= 10_000 else 3
    contenders: dict[str, Callable[[], object]] = {"easnb BYTES encode+decode": easnb_path}
    try:
        from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

        def triton_path() -> None:
            deserialize_bytes_tensor(serialize_byte_tensor(items).item())

        contenders["tritonclient serialize+deserialize"] = triton_path
    except ImportError:
        pass
    return interleaved(contenders, repeat)


def bench_frame() -> list[tuple[str, float]]:
    rng = np.random.default_rng(2)
    arrays = {f"out{i}": rng.random(10_000 if QUICK else 1_000_000, dtype=np.float32) for i in range(4)}
    result = InferResult("m", "1", "", arrays, {n: "FP32" for n in arrays})
    return interleaved({"pandas.DataFrame(arrays), the floor": lambda: pd.DataFrame(arrays), "easnb result.to_frame()": result.to_frame})


def report(title: str, rows: list[tuple[str, float, float]], target: str) -> None:
    """Each row's median and p90, and its median as a ratio to the first row's."""
    base = rows[0][1]
    print(f"\n{title}  (target: {target})")
    for name, median, p90 in rows:
        print(f"  {name:<38} median {median * 1000:9.2f} ms  p90 {p90 * 1000:9.2f} ms  {median / base:6.2f}x")


def main() -> int:
    from throughput import machine

    print(machine())
    rows = bench_64mb()
    report("64 MiB FP32 tensor", rows, "easnb within 3x of memcpy")
    for count in (1_000, 10_000) if QUICK else (10_000, 1_000_000):
        rows = bench_bytes(count)
        target = "tritonclient at least 3x easnb" if len(rows) > 1 else "(tritonclient not installed)"
        report(f"{count:,} BYTES strings", rows, target)
    rows = bench_frame()
    report("1M rows x 4 outputs to DataFrame", rows, "easnb within 1.5x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
