"""easnb's load_test beside Triton's perf_analyzer, on the same Triton model at the same levels, in one run.

    python bench/perf_analyzer.py                  # concurrency 1,2,4,8; prints a table and the verdict
    python bench/perf_analyzer.py --quick          # two short levels (the test runs this)
    python bench/perf_analyzer.py --install        # only fetch perf_analyzer into .cache/perf_analyzer

The server is Triton's C++ core with the bench identity backend (bench/triton.py, model
``identity_fp32``, a [1, 16] FP32 request). perf_analyzer is the binary inside the
``tritonclient[all]==2.41.0`` wheel (the newer ``perf-analyzer`` wheels need glibc 2.38); it needs
Debian's ``libb64-0d`` and ``libcudart.so.12`` from the ``nvidia-cuda-runtime-cu12`` wheel, both
fetched here with ``pip download --no-deps`` and unpacked, nothing installed.

Per level, perf_analyzer runs first and load_test right after, so both see the same machine.
Target: infer/s and p50 within 10% of perf_analyzer's wherever perf_analyzer itself is not
saturated, or the level flagged by load_test as limited by its own client CPU.
"""

from __future__ import annotations

import argparse
import csv
import ctypes.util
import os
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from triton import triton_server  # noqa: E402

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


def judge(pa: dict[str, float], level: object) -> str:
    """The level's verdict against the target."""
    if pa["cpu"] >= SATURATED:
        return "perf_analyzer saturated (not judged)"
    close = abs(level.infer_per_s / pa["infer_per_s"] - 1) <= 0.10 and abs(level.p50_ms / pa["p50_ms"] - 1) <= 0.10
    if close:
        return "within 10%"
    if level.client_limited:
        return "client-limited, flagged"
    return "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=4.5, help="load_test's window; perf_analyzer runs 3 windows of a third")
    parser.add_argument("--quick", action="store_true", help="concurrency 1,2 and short windows")
    parser.add_argument("--install", action="store_true", help="only fetch perf_analyzer")
    args = parser.parse_args()
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
    with triton_server() as endpoint, easnb.connect(endpoint) as conn:
        run_perf_analyzer(binary, endpoint, levels[0], window_ms)  # warm both the server and the page cache
        for c in levels:
            pa = run_perf_analyzer(binary, endpoint, c, window_ms)
            level = conn.load_test(MODEL, {"INPUT0": x}, concurrency=[c], seconds=seconds, warmup=0.5, progress=False).levels[0]
            rows.append((c, pa, level, judge(pa, level)))
    print(f"Triton {MODEL} [1, 16] FP32, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print("| concurrency | perf_analyzer infer/s | load_test infer/s | ratio | perf_analyzer p50 ms | load_test p50 ms | ratio "
          "| perf_analyzer CPU | load_test client CPU µs/request (core share) | verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c, pa, level, verdict in rows:
        print(f"| {c} | {pa['infer_per_s']:,.0f} | {level.infer_per_s:,.0f} | {level.infer_per_s / pa['infer_per_s']:.2f} "
              f"| {pa['p50_ms']:.3f} | {level.p50_ms:.3f} | {level.p50_ms / pa['p50_ms']:.2f} | {pa['cpu']:.0%} "
              f"| {level.client_cpu_us:.0f} ({level.client_busy:.0%}) | {verdict} |")
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > cores:
        print(f"note: the machine was busy (load {load:.1f} on {cores} cores): both tools' figures wander with it")
    missed = [c for c, *_, verdict in rows if verdict == "MISS"]
    print("target met at every level" if not missed else f"target MISSED at concurrency {missed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
