"""Load sweeps of streaming (decoupled) text models: time to first token, inter-token latency, tokens/s.

Each caller (closed loop) runs one generation after another with ``conn.generate``; a level reports,
as NVIDIA's genai-perf does, the time to first token and the inter-token latency percentiles, the
output tokens per second of all callers together, and each request's whole latency. A generation
whose replies easnb cannot read fails as ``UNREADABLE_REPLY``, one that ends without any
``text_output`` as ``NO_TEXT_OUTPUT`` (``easnb.loadcheck``); each kind keeps what its first failure said.

>>> conn.load_test("textgen", "Tell me a story", concurrency=[1, 4], stream=True, max_tokens=32)   # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import EasnbError, ServerError, TensorError
from .generate import TEXT_OUT
from .loadcheck import NO_TEXT, UNREADABLE, reason
from .loadreport import Level, machine_load
from .redaction import redact

if TYPE_CHECKING:
    from .link import Link


class _Caller:
    """One caller's generations inside the window: latency, first token, gaps between tokens, tokens."""

    def __init__(self) -> None:
        self.latency: list[float] = []
        self.started: list[float] = []
        self.first: list[float] = []
        self.gaps: list[float] = []
        self.tokens = 0
        self.codes: list[str] = []
        self.messages: dict[str, str] = {}
        self.seen = self.failed = 0


def failure_kind(exc: EasnbError) -> str:
    """A failed generation's kind: a reply easnb cannot read (``UNREADABLE_REPLY``), else the gRPC code or the error's class."""
    if exc.code is None and (isinstance(exc, TensorError) or type(exc) is ServerError):
        return UNREADABLE
    return exc.code.name if exc.code is not None else type(exc).__name__


def _caller(conn: Link, model: str, prompt: str, options: dict[str, Any], window: tuple[float, float],
            stop: threading.Event, record: _Caller) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        if start >= window[1]:
            return
        code, generation, message = "OK", None, ""
        try:
            generation = conn.generate(model, prompt, **options).finish()
        except EasnbError as exc:
            code, message = failure_kind(exc), exc.message
        end = time.perf_counter()
        if generation is not None and not any(TEXT_OUT in r.outputs for r in generation.stream.responses):
            code, generation = NO_TEXT, None
            message = "The generation ended without any text_output: its replies do not follow the text generation conventions."
        if message and code not in record.messages:
            record.messages[code] = reason(redact(message, conn.settings.token))
        record.seen += 1
        record.failed += code != "OK"
        if window[0] <= end <= window[1]:  # answered in the window, however early it started (see loadtest)
            record.codes.append(code)
            record.started.append(start - window[0])
            record.latency.append(end - start)
            if generation is not None:
                if generation.time_to_first_token is not None:
                    record.first.append(generation.time_to_first_token)
                record.gaps.extend(generation.inter_token_latencies)
                record.tokens += generation.tokens


def run_stream_level(
    conn: Link, model: str, prompt: str, level: int, seconds: float, warmup: float,
    stop_error_rate: float | None, tick: Callable[[float], None], cancel: threading.Event, options: dict[str, Any],
) -> Level:
    """One closed-loop level of ``level`` callers, each generating one answer after another."""
    begin = time.perf_counter()
    window = (begin + warmup, begin + warmup + seconds)
    stop = threading.Event()
    records = [_Caller() for _ in range(level)]
    threads = [threading.Thread(target=_caller, args=(conn, model, prompt, options, window, stop, r), daemon=True)
               for r in records]
    for thread in threads:
        thread.start()
    reason, cpu = "", [0.0, 0.0]
    try:
        while time.perf_counter() < window[1] and not cancel.is_set():
            now = time.perf_counter()
            if not cpu[0] and now >= window[0]:
                cpu[0] = time.process_time()
            seen, failed = sum(r.seen for r in records), sum(r.failed for r in records)
            if stop_error_rate is not None and seen >= 5 and failed / seen > stop_error_rate:
                reason = f"stopped: {failed} of {seen} generations failed (more than {stop_error_rate:.0%})"
                break
            tick(now - begin)
            time.sleep(max(0.001, min(0.1, window[1] - now, window[0] - now if now < window[0] else 0.1)))
        cpu[1] = time.process_time()
        measured = min(seconds, max(1e-9, time.perf_counter() - window[0]))
    finally:
        stop.set()
        bound = time.perf_counter() + (conn.timeout or 5.0) + 1.0
        for thread in threads:  # a generation stuck on a hung server is left behind (a daemon), not waited for
            thread.join(max(0.0, bound - time.perf_counter()))
    return _summary(records, level, measured, reason, cpu[1] - cpu[0] if cpu[0] else 0.0)


def _ms(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1000) if values else float("nan")


def _summary(records: list[_Caller], level: int, seconds: float, reason: str, cpu: float) -> Level:
    codes = [c for r in records for c in r.codes]
    ok = [lat for r in records for lat, c in zip(r.latency, r.codes) if c == "OK"]
    errors: dict[str, int] = {}
    for code in codes:
        if code != "OK":
            errors[code] = errors.get(code, 0) + 1
    messages: dict[str, str] = {}
    for r in records:
        for code, message in r.messages.items():
            if code in errors:
                messages.setdefault(code, message)
    first = [x for r in records for x in r.first]
    gaps = [x for r in records for x in r.gaps]
    tokens = sum(r.tokens for r in records)
    started = np.array([x for r in records for x in r.started])
    latency = np.array([x for r in records for x in r.latency]) * 1000
    order = np.argsort(started, kind="stable")
    import os

    return Level(
        mode="concurrency", level=level, seconds=seconds, requests=len(codes), errors=errors, error_messages=messages,
        infer_per_s=len(ok) / seconds, rows_per_s=len(ok) / seconds,
        p50_ms=_ms(ok, 50), p90_ms=_ms(ok, 90), p95_ms=_ms(ok, 95), p99_ms=_ms(ok, 99),
        max_ms=max(ok) * 1000 if ok else float("nan"), mean_ms=float(np.mean(ok)) * 1000 if ok else float("nan"),
        server_ms={}, server_requests=0, client_cpu_us=cpu / max(1, len(codes)) * 1e6, client_busy=cpu / seconds,
        stopped=reason, machine_load=machine_load(), cores=os.cpu_count() or 0,
        started_s=started[order], latency_ms=latency[order],
        stream={
            "ttft_p50_ms": _ms(first, 50), "ttft_p90_ms": _ms(first, 90), "ttft_p99_ms": _ms(first, 99),
            "itl_p50_ms": _ms(gaps, 50), "itl_p90_ms": _ms(gaps, 90), "itl_p99_ms": _ms(gaps, 99),
            "tokens_per_s": tokens / seconds, "tokens_per_request": tokens / len(ok) if ok else float("nan"),
        },
    )
