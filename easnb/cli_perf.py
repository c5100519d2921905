"""The ``load`` and ``compare`` commands: a load sweep's table, and an A/B comparison whose exit code says the verdict.

    easnb load ENDPOINT MODEL --concurrency 1,2,4,8 --seconds 10 [--rate 100,200] [--inputs JSON | --csv FILE] [--json]   # exit 1 if it stopped on errors
    easnb load ENDPOINT helloworld.GreeterService/SayHello --inputs '{"name": "x"}' --concurrency 1,4
    easnb load ENDPOINT textgen --prompt "Tell me a story" --max-tokens 64 --concurrency 1,4      # a streaming model
    easnb compare ENDPOINT_A ENDPOINT_B MODEL (--inputs JSON | --csv FILE) [--model-b M]   # exit 1 when they differ, 2 when it cannot compare

B's token comes from ``--b-token-file`` or ``$EASNB_TOKEN_B`` (A's from ``--token-file`` or ``$EASNB_TOKEN``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import UsageError


def numbers(text: str, kind: Callable[[str], float] = float) -> list[float]:
    """``1,2,4`` as ``[1.0, 2.0, 4.0]``; a clear error otherwise."""
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{text!r} is not a comma-separated list of numbers.", hint="e.g. --concurrency 1,2,4,8") from None


def read_data(conn: Any, model: str, args: argparse.Namespace) -> Any:
    """``--csv FILE`` as a DataFrame, or ``--inputs JSON`` as typed arrays for the model (or fields for a method)."""
    if args.csv:
        import pandas as pd

        try:
            return pd.read_csv(Path(args.csv))
        except (OSError, ValueError) as exc:
            raise UsageError(f"Cannot read --csv {args.csv!r}: {exc}.") from None
    if not args.inputs:
        raise UsageError("Give the request: --inputs JSON or --csv FILE.", hint='e.g. --inputs \'{"features": [[5.1, 3.5, 1.4, 0.2]]}\'')
    try:
        given = json.loads(args.inputs)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--inputs is not JSON: {exc}.", hint='Give e.g. \'{"TEXT": ["hello"]}\'.') from None
    if not isinstance(given, dict):
        raise UsageError("--inputs must be a JSON object of input name -> values.")
    if "/" in model:
        return given
    import numpy as np

    from .dtypes import DATATYPES
    from .tensors import Tensor

    meta = conn.cached_model_metadata(model, getattr(args, "version", ""))
    inputs = {}
    for name, value in given.items():
        datatype = meta.input(name).datatype
        dtype = DATATYPES[datatype].dtype if datatype not in ("BF16", "BYTES") else None
        try:
            inputs[name] = Tensor(np.asarray(value, dtype=dtype) if dtype else value, datatype)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"--inputs {name!r} does not fit {datatype}: {exc}.") from None
    return inputs


def load(args: argparse.Namespace, connection: Callable[[argparse.Namespace], Any]) -> int:
    if (args.concurrency is None) == (args.rate is None):
        raise UsageError("Give --concurrency 1,2,4 (closed loop) or --rate 100,200 (open loop), one of them.")
    with connection(args) as conn:
        target: Any = args.model
        if "/" in args.model:  # any unary method, found by the server's reflection
            service, _, method = args.model.rpartition("/")
            target = getattr(conn.service(service), method)
        levels = {"concurrency": numbers(args.concurrency, int)} if args.concurrency else {"rate": numbers(args.rate)}
        progress = sys.stderr.isatty() and not args.json
        if args.prompt is not None:  # a streaming text model: time to first token, inter-token latency
            extra = {} if args.max_tokens is None else {"max_tokens": args.max_tokens}
            report = conn.load_test(target, args.prompt, seconds=args.seconds, warmup=args.warmup, progress=progress,
                                    stream=True, **levels, **extra)
        else:
            report = conn.load_test(target, read_data(conn, args.model, args), seconds=args.seconds, warmup=args.warmup,
                                    batch_size=args.batch_size, progress=progress, **levels)
    if args.json:
        print(report.to_json())
        return _status(report)
    import pandas as pd

    from .loadreport import error_notes

    with pd.option_context("display.max_columns", None, "display.width", 200):
        show(report.frame.drop(columns=["client_limited"], errors="ignore").round(2).to_string())
    for note in error_notes(report):  # replies easnb cannot read, levels where nothing succeeded
        show(f"errors: {note}")
    for level in report.levels:
        if level.client_limited:
            show(f"note: {report.mode} {level.level:g} measured this client more than the server: {level.client_limited}")
    if not report.split:
        print("note: the server reports no split of its time (Triton's statistics extension)")
    if report.interrupted or report.stopped:
        show(f"note: {report.stopped or 'interrupted'}; the levels that finished are shown")
    return _status(report)


def _status(report: Any) -> int:
    """0 for a sweep that ran every level; 1 when it stopped early (the error rate, a closed connection) or a
    level had no success at all; 130 on Ctrl-C."""
    from .loadreport import dead_levels

    return 130 if report.interrupted else 1 if report.stopped or dead_levels(report) else 0


def show(text: str) -> None:
    """Print what a server sent (labels, names) with its control characters made visible, line by line."""
    from .terminal import visible

    print("\n".join(visible(line) for line in text.splitlines()))


def compare(args: argparse.Namespace, connection: Callable[[argparse.Namespace], Any], read_token: Callable[..., Any]) -> int:
    from .compare import compare as run_compare
    from .connection import connect

    with connection(args) as conn_a, connect(args.endpoint_b, token=read_token(args, "b-", "EASNB_TOKEN_B"),
                                             timeout=args.timeout) as conn_b:
        data = read_data(conn_a, args.model, args)
        report = run_compare(conn_a, conn_b, args.model, data, model_b=args.model_b, rtol=args.rtol, atol=args.atol,
                             latency_samples=args.latency_samples)
    import pandas as pd

    show(report.verdict)
    show(f"A: {report.name_a}\nB: {report.name_b}")
    with pd.option_context("display.max_columns", None, "display.width", 200):
        if report.outputs:
            show(report.frame.to_string())
        if len(report.differing):
            show(f"rows that differ ({len(report.differing)}; first 20):")
            show(report.differing.head(20).to_string())
        if len(report.latency):
            show("latency (ms):")
            show(report.latency.round(2).to_string())
    return 0 if report.same else 1


def add_commands(sub: Any, client: Callable[[str, str], argparse.ArgumentParser], connection: Callable[..., Any],
                 read_token: Callable[..., Any], token_options: Callable[..., None]) -> None:
    """Add ``load`` and ``compare`` to the command line's subcommands."""
    p = client("load", "throughput and latency at each level of load (a table, or --json); exit 1 when it stopped on errors")
    p.add_argument("model", metavar="MODEL", help="a V2 model, or SERVICE/METHOD for any unary method")
    p.add_argument("--concurrency", metavar="N,N", help="callers in a closed loop, e.g. 1,2,4,8")
    p.add_argument("--rate", metavar="R,R", help="requests per second, open loop, e.g. 100,200")
    p.add_argument("--seconds", type=float, default=10, help="measured per level (default 10)")
    p.add_argument("--warmup", type=float, default=1, help="seconds per level not counted (default 1)")
    p.add_argument("--batch-size", type=int, default=1, help="rows per request from --csv (default 1)")
    group = _data_options(p)
    group.add_argument("--prompt", help="a streaming text model's prompt: time to first token, inter-token latency")
    p.add_argument("--max-tokens", type=int, help="with --prompt: tokens per generation")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=lambda args: load(args, connection))
    p = client("compare", "the same rows through two models; exit 1 when they differ beyond tolerance, 2 when a side fails")
    p.add_argument("endpoint_b", metavar="ENDPOINT_B", help="B's endpoint (may be the same as A's)")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--model-b", help="B's model (default: MODEL)")
    token_options(p, "B's token (default: $EASNB_TOKEN_B)", "b-")
    _data_options(p)
    p.add_argument("--rtol", type=float, default=1e-5)
    p.add_argument("--atol", type=float, default=1e-6)
    p.add_argument("--latency-samples", type=int, default=30, help="single calls to each for latency (default 30)")
    p.set_defaults(run=lambda args: compare(args, connection, read_token), error_code=2)


def _data_options(p: argparse.ArgumentParser) -> Any:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--inputs", help='JSON object of input name -> nested list, e.g. \'{"TEXT": ["hi"]}\'')
    group.add_argument("--csv", metavar="FILE", help="rows to send, one column per feature")
    return group
