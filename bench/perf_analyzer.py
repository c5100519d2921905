"""easnb's load_test beside Triton's perf_analyzer, on the same Triton model at the same levels, in one run.

    python bench/perf_analyzer.py                  # concurrency 1,2,4,8; prints a table and the verdict
    python bench/perf_analyzer.py --repeat 3       # the Python contenders 3 times a level, each judged by its median run
    python bench/perf_analyzer.py --quick          # two short levels (the test runs this)
    python bench/perf_analyzer.py --install        # only fetch perf_analyzer into .cache/perf_analyzer

The server is Triton's C++ core with the bench identity backend (bench/triton.py, model
``identity_fp32``, a [1, 16] FP32 request). perf_analyzer is the binary inside the
``tritonclient[all]==2.41.0`` wheel (the newer ``perf-analyzer`` wheels need glibc 2.38); it needs
Debian's ``libb64-0d`` and ``libcudart.so.12`` from the ``nvidia-cuda-runtime-cu12`` wheel, both
fetched here with ``pip download --no-deps`` and unpacked, nothing installed.

Per level, perf_analyzer runs first, then a bare Python stub (a thread per concurrency slot calling a
plain gRPC stub in a closed loop: what any Python client can do on this machine) and load_test, taking
turns at going first, so all three see the same machine. A level is met when load_test is at most 10% behind perf_analyzer
(infer/s at least 0.9 of its, p50 at most 1.1 times its) where perf_analyzer is not saturated; or,
where load_test flags the level as limited by its own client CPU (or perf_analyzer is saturated), at
most 10% behind the bare stub, the flag shown. "target met" is printed only when every level is met.
"""

from __future__ import annotations

import argparse
import csv
import ctypes.util
import os
import resource
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from triton import triton_server  # noqa: E402

from easnb.loadreport import Level  # noqa: E402

CACHE = ROOT / ".cache" / "perf_analyzer"
WHEELS = {"tritonclient[all]==2.41.0": "tritonclient-2.41.0.data/data/bin/perf_analyzer",
          "nvidia-cuda-runtime-cu12": "nvidia/cuda_runtime/lib/libcudart.so.12"}
MODEL, SHAPE = "identity_fp32", (1, 16)
#: perf_analyzer at this share of a core or more is itself the limit: its level is not judged.
SATURATED = 0.9


def install() -> Path:
    """perf_analyzer and libcudart unpacked into .cache/perf_analyzer (downloaded once); the binary's path."""
    if ctypes.util.find_library("b64") is None and not Path("/usr/lib/x86_64-linux-gnu/libb64.so.0d").exists():
        sys.exit("perf_analyzer needs Debian's libb64: apt-get install libb64-0d")
    for requirement, member in WHEELS.items():
        if (CACHE / member).exists():
            continue
        CACHE.mkdir(parents=True, exist_ok=True)
        name = requirement.split("[")[0].split("==")[0].replace("-", "_")
        found = [w for w in CACHE.glob("*.whl") if w.name.lower().startswith(name)]
        if not found:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", requirement, "-d", str(CACHE)],
                           check=True)
            found = [w for w in CACHE.glob("*.whl") if w.name.lower().startswith(name)]
        with zipfile.ZipFile(found[0]) as wheel:
            wheel.extract(member, CACHE)
        (CACHE / member).chmod(0o755)
        found[0].unlink()
    return CACHE / WHEELS["tritonclient[all]==2.41.0"]


def run_perf_analyzer(binary: Path, endpoint: str, concurrency: int, window_ms: int) -> dict[str, float]:
    """One level of perf_analyzer: infer/s, p50 in ms, and its own CPU as a share of one core."""
    out = CACHE / f"level-{concurrency}.csv"
    env = {**os.environ, "LD_LIBRARY_PATH": f"{CACHE / 'nvidia/cuda_runtime/lib'}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    # -s 1000 -r 3: three windows whatever their spread (a shared machine is never "stable" at 10%)
    done = subprocess.run(
        [str(binary), "-m", MODEL, "-x", "1", "-u", endpoint, "-i", "grpc", "--concurrency-range", f"{concurrency}:{concurrency}",
         "--shape", f"INPUT0:{SHAPE[0]},{SHAPE[1]}", "-p", str(window_ms), "-s", "1000", "-r", "3", "-f", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"perf_analyzer failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    row = next(csv.DictReader(out.open()))
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"infer_per_s": float(row["Inferences/Second"]), "p50_ms": float(row["p50 latency"]) / 1000,
            "p99_ms": float(row["p99 latency"]) / 1000, "cpu": cpu / wall}


def bare_stub(endpoint: str, concurrency: int, seconds: float, warmup: float) -> dict[str, float]:
    """What any Python client can do on this machine: a thread per concurrency slot calling a plain gRPC stub
    (the protobuf request built once and serialized per call, the reply parsed, as a generated stub does) in a
    closed loop. The requests answered inside the window count (as perf_analyzer and load_test count them);
    infer/s, p50 in ms, and this process's CPU per request (µs) and as a share of one core."""
    import grpc
    import numpy as np

    from easnb._proto import ModelInferRequest, ModelInferResponse

    x = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    request = ModelInferRequest(model_name=MODEL, model_version="1")
    request.inputs.add(name="INPUT0", datatype="FP32", shape=list(SHAPE))
    request.raw_input_contents.append(x.tobytes())  # the values as every V2 client sends them
    with grpc.insecure_channel(endpoint) as channel:
        stub = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                   request_serializer=ModelInferRequest.SerializeToString,
                                   response_deserializer=ModelInferResponse.FromString)
        stub(request, timeout=10)
        begin = time.perf_counter()
        opens, closes = begin + warmup, begin + warmup + seconds
        times: list[list[tuple[float, float]]] = [[] for _ in range(concurrency)]

        def caller(kept: list[tuple[float, float]]) -> None:
            while True:
                start = time.perf_counter()
                if start >= closes:
                    return
                stub(request, timeout=10)
                kept.append((start, time.perf_counter()))

        threads = [threading.Thread(target=caller, args=(kept,)) for kept in times]
        for thread in threads:
            thread.start()
        time.sleep(max(0.0, opens - time.perf_counter()))
        cpu = time.process_time()
        time.sleep(max(0.0, closes - time.perf_counter()))
        cpu = time.process_time() - cpu
        for thread in threads:
            thread.join()
    inside = np.array([(end - start) * 1000 for kept in times for start, end in kept if opens <= end <= closes])
    return {"infer_per_s": len(inside) / seconds, "p50_ms": float(np.percentile(inside, 50)),
            "cpu_us": cpu / max(1, len(inside)) * 1e6, "cpu": cpu / seconds}


def close_to(level: Level, reference: dict[str, float]) -> bool:
    """load_test at most 10% behind ``reference``: infer/s at least 0.9 of it, p50 at most 1.1 times it
    (ahead of it is no sign of a bottleneck in the generator)."""
    return level.infer_per_s >= 0.9 * reference["infer_per_s"] and level.p50_ms <= 1.1 * reference["p50_ms"]


def judge(pa: dict[str, float], stub: dict[str, float], level: Level) -> str:
    """The level's verdict: met beside perf_analyzer, or, where load_test flags its own client CPU as the
    limit (or perf_analyzer is saturated), beside the bare Python stub; "MISS" otherwise."""
    saturated = pa["cpu"] >= SATURATED
    if not saturated and close_to(level, pa):
        return "met: within 10% of perf_analyzer"
    if (level.client_limited or saturated) and close_to(level, stub):
        return ("met: perf_analyzer saturated; " if saturated else "met: client-limited (flagged); ") + \
            "within 10% of the bare stub"
    if level.client_limited and not saturated:
        return "MISS: client-limited (flagged) and behind the bare stub"
    return "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=4.5, help="load_test's window; perf_analyzer runs 3 windows of a third")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of the bare stub and of load_test per level, taking turns; each judged by its median run")
    parser.add_argument("--quick", action="store_true", help="concurrency 1,2 and short windows")
    parser.add_argument("--install", action="store_true", help="only fetch perf_analyzer")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat takes 1 or more")
    binary = install()
    if args.install:
        print(binary)
        return 0
    import numpy as np

    import easnb

    levels = [1, 2] if args.quick else [int(c) for c in args.concurrency.split(",")]
    seconds = 1.0 if args.quick else args.seconds
    window_ms = int(seconds * 1000 / 3)
    x = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    rows = []
    loads = [os.getloadavg()[0]]
    with triton_server() as endpoint, easnb.connect(endpoint) as conn:
        run_perf_analyzer(binary, endpoint, levels[0], window_ms)  # warm both the server and the page cache
        for i, c in enumerate(levels):
            pa = run_perf_analyzer(binary, endpoint, c, window_ms)

            def sweep(c: int = c) -> Level:
                found: Level = conn.load_test(MODEL, {"INPUT0": x}, concurrency=[c], seconds=seconds, warmup=0.5,
                                              progress=False).levels[0]
                return found

            stubs, sweeps = [], []
            for k in range(args.repeat):  # the two Python contenders take turns going first: a drift in load favours neither
                if (i + k) % 2:
                    sweeps.append(sweep())
                    stubs.append(bare_stub(endpoint, c, seconds, 0.5))
                else:
                    stubs.append(bare_stub(endpoint, c, seconds, 0.5))
                    sweeps.append(sweep())
            # each contender's run with the median infer/s (a real run, its p50 and CPU with it)
            stub = sorted(stubs, key=lambda r: r["infer_per_s"])[(len(stubs) - 1) // 2]
            level = sorted(sweeps, key=lambda r: r.infer_per_s)[(len(sweeps) - 1) // 2]
            rows.append((c, pa, stub, level, judge(pa, stub, level)))
            loads.append(os.getloadavg()[0])
    print(f"Triton {MODEL} [1, 16] FP32, {os.cpu_count()} cores, load average {min(loads):.1f}-{max(loads):.1f} during the run"
          + (f"; bare stub and load_test: the median of {args.repeat} runs each" if args.repeat > 1 else ""))
    print("| concurrency | perf_analyzer infer/s | bare stub infer/s | load_test infer/s | load_test / perf_analyzer "
          "| load_test / bare stub | perf_analyzer p50 ms | bare stub p50 ms | load_test p50 ms | perf_analyzer CPU "
          "| bare stub CPU µs/request | load_test CPU µs/request (core share) | client-limited | verdict |")
    print("|---" * 14 + "|")
    for c, pa, stub, level, verdict in rows:
        print(f"| {c} | {pa['infer_per_s']:,.0f} | {stub['infer_per_s']:,.0f} | {level.infer_per_s:,.0f} "
              f"| {level.infer_per_s / pa['infer_per_s']:.2f} | {level.infer_per_s / stub['infer_per_s']:.2f} "
              f"| {pa['p50_ms']:.3f} | {stub['p50_ms']:.3f} | {level.p50_ms:.3f} | {pa['cpu']:.0%} "
              f"| {stub['cpu_us']:.0f} | {level.client_cpu_us:.0f} ({level.client_busy:.0%}) "
              f"| {'yes' if level.client_limited else 'no'} | {verdict} |")
    for c, *_, level, _verdict in rows:
        if level.client_limited:
            print(f"concurrency {c}: load_test flagged it: {level.client_limited}")
    load, cores = max(loads), os.cpu_count() or 1
    if load > cores:
        print(f"note: the machine was busy (load up to {load:.1f} on {cores} cores): every tool's figures wander with it")
    missed = [c for c, *_, verdict in rows if verdict.startswith("MISS")]
    print("target met at every level" if not missed else f"target MISSED at concurrency {missed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
