"""load_test's infer/s against the demo, two checkouts of easnb taking turns: what a change to its hot path costs.

    python bench/load.py --against /path/to/other/checkout     # this checkout and that one, interleaved
    python bench/load.py                                       # this checkout alone
    python bench/load.py --model iris --levels 1,4 --rounds 7 --seconds 3
    python bench/load.py --check-off                           # this checkout, the reply check off and on, interleaved
    python bench/load.py --quick                               # one short round: only checks that it runs

The demo runs as its own process (this checkout's). Each round runs one sweep per checkout, each in a fresh
Python with that checkout first on its path, the order alternating round by round (ABBA) so neither
always goes first; a sweep is ``conn.load_test(model, one row, concurrency=levels)``. Prints each
checkout's median infer/s and client CPU per request (µs) per level over the rounds, every round's
figures, the ratio to the first checkout (of medians, and the median of each round's pair), and the machine's
load. ``--check-off`` compares this checkout with itself, the reply check (``easnb.loadcheck``) replaced by
a no-op in one of the two: the check's own cost, whatever else differs between checkouts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from throughput import TOKEN, machine, server  # noqa: E402

ROWS = {"echo": {"x": [[float(i) for i in range(16)]]}, "iris": {"features": [[5.1, 3.5, 1.4, 0.2]]}}


def one_sweep(endpoint: str, model: str, levels: list[int], seconds: float, check: bool = True) -> dict[str, Any]:
    """In this process (whichever easnb is first on the path): infer/s and CPU µs a request per level."""
    import numpy as np

    import easnb
    import easnb.loadwork

    if not check:  # every reply passes, as before replies were checked
        setattr(easnb.loadwork, "infer_replies", lambda: (lambda data: ""))

    with easnb.connect(endpoint, token=TOKEN, timeout=10) as conn:
        row = {name: np.asarray(values, np.float32) for name, values in ROWS[model].items()}
        report = conn.load_test(model, row, concurrency=levels, seconds=seconds, warmup=0.5, progress=False,
                                stop_error_rate=None)
    return {"infer_per_s": [lv.infer_per_s for lv in report.levels], "cpu_us": [lv.client_cpu_us for lv in report.levels],
            "errors": [sum(lv.errors.values()) for lv in report.levels], "easnb": easnb.__file__}


def sweep_in(checkout: Path, endpoint: str, args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    command = [sys.executable, str(Path(__file__).resolve()), "--one", endpoint, "--model", args.model,
               "--levels", args.levels, "--seconds", str(args.seconds), *extra]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=checkout, check=True)
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    if not result["easnb"].startswith(str(checkout)):
        sys.exit(f"the sweep for {checkout} ran {result['easnb']}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, help="another checkout of easnb (e.g. main before a change)")
    parser.add_argument("--model", choices=sorted(ROWS), default="echo", help="echo: a 1x16 FP32 row; iris: a 1x4 row")
    parser.add_argument("--levels", default="1,4", help="concurrency levels (default 1,4)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured per level (default 3)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--check-off", action="store_true", help="this checkout against itself with the reply check off")
    parser.add_argument("--quick", action="store_true", help="one round of 0.3 s at concurrency 1")
    parser.add_argument("--one", metavar="ENDPOINT", help=argparse.SUPPRESS)  # a child: one sweep, JSON out
    parser.add_argument("--no-check", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.levels = 1, 0.3, "1"
    levels = [int(v) for v in args.levels.split(",")]
    if args.one:
        print(json.dumps(one_sweep(args.one, args.model, levels, args.seconds, check=not args.no_check)))
        return 0
    contenders: list[tuple[str, Path, list[str]]] = [("this", ROOT, [])]
    if args.against is not None:
        contenders = [("against", args.against.resolve(), []), ("this", ROOT, [])]
    elif args.check_off:
        contenders = [("no check", ROOT, ["--no-check"]), ("check", ROOT, [])]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in contenders}
    print(machine())
    with server("demo") as (endpoint, _, _):
        for r in range(args.rounds):
            for name, checkout, extra in contenders if r % 2 == 0 else contenders[::-1]:
                runs[name].append(sweep_in(checkout, endpoint, args, extra))
                print(f"round {r + 1} {name:<8} infer/s {[round(v) for v in runs[name][-1]['infer_per_s']]} "
                      f"cpu µs {[round(c) for c in runs[name][-1]['cpu_us']]} errors {runs[name][-1]['errors']}", flush=True)
    print(machine())
    print(f"model {args.model}, {args.rounds} rounds, {args.seconds:g} s a level; medians over rounds:")
    first = runs[contenders[0][0]]
    for name, checkout, extra in contenders:
        for i, level in enumerate(levels):
            rate = statistics.median(run["infer_per_s"][i] for run in runs[name])
            cpu = statistics.median(run["cpu_us"][i] for run in runs[name])
            paired = statistics.median(run["infer_per_s"][i] / max(1e-9, base["infer_per_s"][i])
                                       for run, base in zip(runs[name], first))
            print(f"  {name:<8} ({checkout}{' ' if extra else ''}{' '.join(extra)}) concurrency {level}: {rate:8.0f} infer/s  "
                  f"{cpu:6.0f} µs CPU a request  {rate / statistics.median(b['infer_per_s'][i] for b in first):5.3f}x "
                  f"(paired {paired:5.3f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
