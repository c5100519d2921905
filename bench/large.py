"""A 64 MiB FP32 round trip through Triton's identity model, against the loopback TCP floor.

    python bench/large.py            # with .cache/triton-venv/bin/python to include tritonclient
    python bench/large.py --quick    # 4 MiB, once: only checks that it runs

The floor is the same bytes sent to an echo on 127.0.0.1 and read back by ``bench/tcp_echo.c``
(built with the system compiler), which times the kernel's loopback path alone. "gRPC alone" is a
bytes-in, bytes-out stub sending a request made beforehand and not decoding the reply: what gRPC
Python and the server cost with no client codec at all. Peak extra memory is measured per contender
in a fresh process (``VmHWM`` after the round trip, less before).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
FLOOR = "loopback TCP echo (C)"
ONE = r'''
import json, sys
import numpy as np
sys.path.insert(0, {bench!r})
from throughput import PATH, request, output
kind, endpoint, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
x = np.random.default_rng(0).random(mib * 262144, dtype=np.float32).reshape(1, -1)
if kind == "easnb":
    import easnb
    conn = easnb.connect(endpoint, timeout=120)
    call = lambda: conn.infer("identity_fp32", {{"INPUT0": x}})["OUTPUT0"]
elif kind == "gRPC alone":
    import easnb, grpc
    from easnb.channel import channel_options
    data = easnb.connect(endpoint).encode_infer("identity_fp32", {{"INPUT0": x}})
    raw = grpc.insecure_channel(endpoint, channel_options()).unary_unary(PATH)
    call = lambda: (raw(memoryview(data).tobytes(), timeout=120), x)[1]  # the request's bytes made inside, as every client must
elif kind == "bare stub":
    import grpc
    from easnb._proto import ModelInferRequest, ModelInferResponse
    from easnb.channel import channel_options
    stub = grpc.insecure_channel(endpoint, channel_options()).unary_unary(PATH, request_serializer=ModelInferRequest.SerializeToString, response_deserializer=ModelInferResponse.FromString)
    call = lambda: output(stub(request("identity_fp32", x), timeout=120))
else:
    import tritonclient.grpc as tc
    client = tc.InferenceServerClient(endpoint)
    def call():
        i = tc.InferInput("INPUT0", list(x.shape), "FP32"); i.set_data_from_numpy(x)
        return client.infer("identity_fp32", [i]).as_numpy("OUTPUT0")
def high_water():  # VmHWM: this process's peak RSS (ru_maxrss would carry the parent's over from fork)
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
    return int(line.split()[1]) / 1024
before = high_water()
out = call()
assert out.shape == x.shape
print(json.dumps({{"peak_mib": high_water() - before}}))
'''


def tcp_floor(nbytes: int) -> float:
    """Seconds for ``nbytes`` to a loopback echo and back, by ``bench/tcp_echo.c`` (best of two runs)."""
    from triton import WORK, compiled

    program = compiled("tcp_echo.c", WORK / "tcp_echo", "-pthread")
    out = subprocess.run([str(program), str(nbytes), "2"], capture_output=True, text=True, check=True, timeout=120)
    return min(float(line) for line in out.stdout.split())


def main(argv: list[str] | None = None) -> int:
    import grpc

    import easnb
    from easnb._proto import ModelInferRequest, ModelInferResponse
    from easnb.channel import channel_options
    from throughput import PATH, machine, output, request
    from triton import triton_server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    mib, repeats = (4, 1) if args.quick else (64, 5)
    x = np.random.default_rng(0).random(mib * 262144, dtype=np.float32).reshape(1, -1)
    with triton_server() as endpoint:
        conn = easnb.connect(endpoint, timeout=120)
        raw = grpc.insecure_channel(endpoint, channel_options()).unary_unary(PATH)  # bytes in, bytes out
        request_bytes = conn.encode_infer("identity_fp32", {"INPUT0": x})
        stub = grpc.insecure_channel(endpoint, channel_options()).unary_unary(
            PATH, request_serializer=ModelInferRequest.SerializeToString, response_deserializer=ModelInferResponse.FromString)
        contenders = {
            FLOOR: lambda: tcp_floor(x.nbytes),
            "gRPC alone": lambda: raw(request_bytes, timeout=120),
            "bare stub": lambda: output(stub(request("identity_fp32", x), timeout=120)),
            "easnb conn.infer": lambda: conn.infer("identity_fp32", {"INPUT0": x})["OUTPUT0"],
        }
        try:
            import tritonclient.grpc as tc

            client = tc.InferenceServerClient(endpoint)

            def triton() -> object:
                i = tc.InferInput("INPUT0", list(x.shape), "FP32")
                i.set_data_from_numpy(x)
                return client.infer("identity_fp32", [i]).as_numpy("OUTPUT0")

            contenders["tritonclient"] = triton
        except ImportError:
            pass
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(repeats):
            for name, call in contenders.items():
                start = time.perf_counter()
                result = call()
                elapsed = time.perf_counter() - start
                times[name].append(result if name == FLOOR else elapsed)  # the floor times itself
        floor = statistics.median(times[FLOOR])
        print(machine())
        print(f"{mib} MiB FP32 round trip through Triton's identity model (targets: easnb within 2.5x of the TCP floor, "
              "peak extra memory at most 3x the payload)")
        for name, values in times.items():
            peak = ""
            if name != FLOOR:
                one = subprocess.run([sys.executable, "-c", ONE.format(bench=str(Path(__file__).parent)), name.split(" conn")[0],
                                      endpoint, str(mib)], capture_output=True, text=True, timeout=300)
                if one.returncode == 0:
                    peak = f"  peak +{json.loads(one.stdout.splitlines()[-1])['peak_mib']:.0f} MiB ({json.loads(one.stdout.splitlines()[-1])['peak_mib'] / mib:.1f}x payload)"
            median, p90 = statistics.median(values), float(np.percentile(values, 90))
            print(f"  {name:<28} median {median * 1000:8.1f} ms  p90 {p90 * 1000:8.1f} ms  {median / floor:5.2f}x floor{peak}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
