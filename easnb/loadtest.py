"""Load sweeps: throughput and latency at each level of load, with the server's own split.

Closed loop (``concurrency=[1, 4, 16]``): that many callers, each sending its next request as
soon as the last one is answered. Open loop (``rate=[100, 200]`` requests per second): requests
are due on a fixed schedule whatever the server does, and a request's latency counts from when
it was due, so a slow server cannot hide its queue by slowing the client down.

>>> report = conn.load_test("iris", {"features": x}, concurrency=[1, 2, 4, 8], seconds=10)   # doctest: +SKIP
>>> report.frame                                                                              # doctest: +SKIP
>>> conn.load_test(greeter.SayHello, {"name": "x"}, rate=[100, 500])                         # doctest: +SKIP
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np

from .errors import ClosedError, EasnbError, LoadTestError
from .loadreport import Level, LoadReport, client_limit
from .loadrun import HUNG_S, LevelRun, Record, closed_callers, code_of, summarise
from .loadwork import Workload, workload
from .statistics import ModelStatistics, model_statistics, total

#: Below this many requests a level's error rate does not stop it.
MIN_FOR_ERROR_RATE = 20
#: A server split whose total exceeds the client's mean latency by more than this factor (plus 1 ms) is not
#: believed: the server's part of a request lies inside the time the client measured around it.
SPLIT_SLACK = 1.25
#: The longest a statistics snapshot may take (seconds): a server that stalls it gets no split, not a stalled sweep.
STATISTICS_WAIT = 5.0

if TYPE_CHECKING:
    from .link import Link

#: Up to this many callers a closed loop runs a thread each on the connection's sync channel, the cheapest
#: per request in Python (a bare stub's path); above it, coroutines on the background grpc.aio loop, cheaper
#: per request once many calls are in flight and without a thread per caller.
THREADED_UP_TO = 8


async def _closed_callers(run: LevelRun, stub: Any, work: Workload, callers: int, seconds: float | None, metadata: Any) -> None:
    """``callers`` coroutines on the background loop, each sending its next request when the last is answered."""
    import asyncio

    n, check = len(work.requests), work.check

    async def caller(record: Record) -> None:
        i = record.slot
        while not run.stop.is_set():
            start = time.perf_counter()
            if start >= run.window[1]:
                return
            reply = None
            try:
                reply = await stub(work.requests[i % n], timeout=seconds, metadata=metadata)
            except grpc.RpcError as exc:
                record.failures.append((len(record.starts), code_of(exc)))
            record.ends.append(time.perf_counter())
            if reply is not None:
                problem = check(reply)
                if problem:
                    run.unreadable(record, problem)
            record.starts.append(start)
            i += callers

    # calls still in flight a second after the window (a hung server, no deadline) are cancelled
    tasks = [asyncio.ensure_future(caller(run.record(slot, callers))) for slot in range(callers)]
    await _settle(tasks, run.window[1] + HUNG_S, run)


async def _settle(tasks: Any, until: float, run: LevelRun) -> None:
    """Wait for ``tasks`` until ``until`` (``perf_counter``) or the stop flag; cancel what is left."""
    import asyncio

    pending = set(tasks)
    while pending and time.perf_counter() < until and not run.stop.is_set():
        _, pending = await asyncio.wait(pending, timeout=0.05)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=1.0)


async def _open_sender(run: LevelRun, stub: Any, work: Workload, rate: float, begin: float, seconds: float | None,
                       metadata: Any, max_in_flight: int) -> None:
    """Send on schedule from the background loop (grpc.aio: cheap to start a call, so the schedule holds)."""
    import asyncio

    record = run.record(indexed=True)
    n, check = len(work.requests), work.check
    in_flight: set[Any] = set()

    async def one(due: float, i: int) -> None:
        reply = None
        try:
            reply = await stub(work.requests[i], timeout=seconds, metadata=metadata)
        except grpc.RpcError as exc:
            record.failures.append((len(record.starts), code_of(exc)))
        record.ends.append(time.perf_counter())
        if reply is not None:
            problem = check(reply)
            if problem:
                run.unreadable(record, problem)
        record.index.append(i)  # type: ignore[union-attr]
        record.starts.append(due)

    first, last = math.ceil((run.window[0] - begin) * rate), math.ceil((run.window[1] - begin) * rate)  # due in the window
    k = 0
    while k < last and not run.stop.is_set():
        due = begin + k / rate
        # behind schedule too: yield, so answers are taken in (and timed) as they come, not after the window
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        if len(in_flight) >= max_in_flight:  # the client cannot keep more in flight: say so, do not pretend
            skip = min(last, max(k + 1, math.ceil((time.perf_counter() - begin) * rate)))  # all due by now
            run.not_sent += max(0, skip - max(k, first))
            k = skip
            continue
        if k >= first:
            record.late.append(time.perf_counter() - due)
        task = asyncio.ensure_future(one(due, k % n))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        k += 1
    # the requests due in the window are answered (each within its deadline; without one, 30 s at most)
    await _settle(list(in_flight), time.perf_counter() + (seconds if seconds is not None else 30.0) + 1.0, run)


def _statistics_wait(timeout: float | None) -> float:
    """How long a statistics call may take: the requests' deadline, at most ``STATISTICS_WAIT`` (even without one)."""
    return min(timeout, STATISTICS_WAIT) if timeout else STATISTICS_WAIT


def _snapshot(conn: Link, work: Workload, timeout: float | None) -> ModelStatistics | None:
    try:
        return total(model_statistics(conn, work.model, work.version, timeout=_statistics_wait(timeout)))
    except EasnbError:
        return None


def run_level(
    conn: Link, work: Workload, mode: str, level: float, seconds: float, warmup: float,
    stop_error_rate: float | None, tick: Callable[[float], None], timeout: float | None, max_in_flight: int,
    split: bool, cancel: threading.Event,
) -> Level:
    """One level: warm up, measure for ``seconds``, and summarise (``tick(elapsed)`` reports progress)."""
    metadata = conn.metadata
    begin = time.perf_counter()
    run = LevelRun((begin + warmup, begin + warmup + seconds), work.rows, due=mode == "rate", token=conn.settings.token)
    if mode == "concurrency" and level <= THREADED_UP_TO:
        # a thread per caller on the connection's sync channel: a bare stub's path, one timestamp pair a request
        threads = closed_callers(run, conn.channel.unary_unary(work.path), work, int(level), timeout, metadata,
                                 lambda: conn.closed)
    else:
        threads = [_on_background(conn, run, work, mode, level, begin, timeout, metadata, max_in_flight)]
    before = after = None
    reason = ""
    try:
        while time.perf_counter() < run.window[1] and not cancel.is_set() and not run.ended:
            now = time.perf_counter()
            if not run.cpu[0] and now >= run.window[0]:
                run.cpu[0] = time.process_time()
                before = _snapshot(conn, work, timeout) if split else None
            seen, failed = run.counts()
            if stop_error_rate is not None and seen >= MIN_FOR_ERROR_RATE and failed / seen > stop_error_rate:
                reason = f"stopped: {failed} of {seen} requests failed (more than {stop_error_rate:.0%})"
                break
            tick(now - begin)
            waiting = now < run.window[0]  # wake up in time to open the window
            time.sleep(max(0.001, min(0.1, run.window[1] - now, run.window[0] - now if waiting else 0.1)))
        run.cpu[1] = time.process_time()
        if split and before is not None and mode == "concurrency":
            after = _snapshot(conn, work, timeout)
        measured = min(seconds, max(1e-9, time.perf_counter() - run.window[0]))
        if reason or cancel.is_set():
            run.stop.set()
    except BaseException:  # Ctrl-C: stop sending at once
        run.stop.set()
        raise
    finally:
        _join(threads, run, mode)
    if run.ended:
        reason = "stopped: the connection was closed" if conn.closed else f"stopped: {run.ended[0]}"
    if split and before is not None and mode == "rate":
        after = _snapshot(conn, work, timeout)
    server = after.since(before) if before is not None and after is not None else None
    if server is not None and any(c < 0 or ns < 0 for c, ns in server.durations.values()):
        server = None  # counters went backwards (the server restarted): no split rather than a wrong one
    result = summarise(run, mode, level, measured, server, reason)
    if result.server_ms and not sum(result.server_ms.values()) <= SPLIT_SLACK * result.mean_ms + 1.0:
        result.server_ms = {}  # the server's time for a request is inside what the client measured around it
        result.server_requests = 0
    return result


def _on_background(conn: Link, run: LevelRun, work: Workload, mode: str, level: float, begin: float,
                   timeout: float | None, metadata: Any, max_in_flight: int) -> threading.Thread:
    """A thread driving the level's senders on the connection's background loop (grpc.aio: one thread however
    many callers, so high concurrency costs no thread switching and the open loop's schedule holds)."""
    background = conn.background()
    stub = background.stub(work.path)
    if mode == "concurrency":
        sender = _closed_callers(run, stub, work, int(level), timeout, metadata)
    else:
        sender = _open_sender(run, stub, work, float(level), begin, timeout, metadata, max_in_flight)

    def drive() -> None:  # the connection closed mid-level ends its loop: a stopped level, not a thread's traceback
        try:
            background.run(sender)
        except Exception as exc:
            run.end(exc)

    thread = threading.Thread(target=drive, name="easnb-load", daemon=True)
    thread.start()
    return thread


def _join(threads: list[threading.Thread], run: LevelRun, mode: str) -> None:
    """Wait for the senders: closed-loop callers end at the window's end (their calls within ``HUNG_S`` of it),
    the open loop's sender once the requests due in the window are answered. After a stop (Ctrl-C, Stop, the
    error rate) a caller stuck in a call to a hung server is left to its deadline after a second."""
    until = time.perf_counter() + 1.0 if run.stop.is_set() and mode == "concurrency" else None
    for thread in threads:
        thread.join(None if until is None else max(0.0, until - time.perf_counter()))


def load_test(
    conn: Link,
    target: Any,
    inputs: Any = None,
    concurrency: Sequence[int] | None = None,
    rate: Sequence[float] | None = None,
    seconds: float = 10.0,
    *,
    warmup: float = 1.0,
    batch_size: int = 1,
    version: str = "",
    stop_error_rate: float | None = 0.5,
    timeout: Any = None,
    max_in_flight: int = 2000,
    progress: bool = True,
    on_level: Callable[[Level], None] | None = None,
    cancel: threading.Event | None = None,
    stream: bool = False,
    **options: Any,
) -> LoadReport:
    """Sweep levels of load against ``target`` and report each (see the module docstring).

    - ``target``: a V2 model name (``inputs`` a dict of arrays or a DataFrame, whose rows are
      cycled through ``batch_size`` at a time) or a unary method of ``conn.service(...)``
      (``inputs`` its fields as a dict or message, or a list of them to cycle).
    - ``concurrency``: callers in a closed loop (up to 8: a thread each on the connection's sync
      channel, its interceptors and headers applied; more: the background grpc.aio loop);
      ``rate``: requests per second, open loop (the background loop).
    - ``seconds`` measured per level after ``warmup`` seconds that are not counted.
    - ``stop_error_rate``: a level whose failed share exceeds it (after 20 answers) stops the sweep.
    - ``timeout``: each request's deadline in seconds (``None``: the connection's).
    - ``max_in_flight``: open-loop requests the client keeps in flight at most; more are counted
      as ``not_sent`` and the level is marked as limited by the client.
    - ``on_level(level)`` hears of each finished level; setting ``cancel`` stops the sweep.
    - ``stream=True``: ``target`` is a streaming text model and ``inputs`` the prompt; each caller runs
      ``conn.generate`` (``options`` such as ``max_tokens`` go to it) and levels add time to first
      token, inter-token latency (p50/p90/p99, ms) and tokens/s (see ``easnb.loadstream``).

    Replies are not decoded but checked (``easnb.loadcheck``): one easnb cannot read counts as an error of
    kind ``UNREADABLE_REPLY`` (a generation without text, ``NO_TEXT_OUTPUT``), never as a success; each
    level keeps its kinds' first reasons in ``error_messages``.

    Returns a ``LoadReport`` (``.frame``, HTML with a chart, ``.plot()``, ``.to_json()``);
    Ctrl-C returns the levels finished so far. Raises ``LoadTestError`` for a sweep that cannot
    start (no levels, a streaming method) and the usual ``EasnbError`` when the first request fails.
    """
    from .arguments import load_call

    concurrency, rate, seconds, warmup, batch_size, version, stop_error_rate, timeout, max_in_flight, progress = load_call(concurrency, rate, seconds, warmup, batch_size, version, stop_error_rate, timeout, max_in_flight, progress)
    if (concurrency is None) == (rate is None):
        raise LoadTestError("Give either concurrency=[...] (closed loop) or rate=[...] (open loop), not both or neither.")
    mode, levels = ("concurrency", list(concurrency)) if concurrency is not None else ("rate", list(rate or ()))
    if not levels or any(not np.isfinite(v) or v <= 0 for v in levels):
        raise LoadTestError(f"{mode}={levels!r}: give one or more positive numbers.", hint=f"e.g. {mode}=[1, 2, 4, 8]")
    if mode == "concurrency" and any(int(v) != v or v > 1024 for v in levels):
        raise LoadTestError(f"concurrency={levels!r}: give whole numbers up to 1024.")
    if mode == "concurrency":
        levels = [int(v) for v in levels]  # callers are counted in whole numbers (and shown so)
    if seconds <= 0 or warmup < 0:
        raise LoadTestError("seconds must be positive and warmup not negative.")
    conn.check_open()
    cancel = cancel or threading.Event()
    if stream:  # a decoupled text model: generations, with first-token and inter-token latency
        from .loadstream import run_stream_level

        if mode != "concurrency" or not isinstance(target, str) or not isinstance(inputs, str):
            raise LoadTestError("stream=True takes a model name, a prompt (str) and concurrency=[...].",
                                hint='e.g. conn.load_test("textgen", "Tell me a story", concurrency=[1, 4], stream=True)')
        _first_generation(conn, target, inputs, options)

        def one(value: float, tick: Callable[[float], None]) -> Level:
            return run_stream_level(conn, target, inputs, int(value), seconds, warmup, stop_error_rate, tick, cancel, options)

        return _sweep(LoadReport(target, mode), levels, one, warmup + seconds, progress, on_level, cancel)
    work = workload(conn, target, inputs, batch_size, version, **options)
    deadline = conn.timeout if timeout is None else timeout
    _first_call(conn, work, deadline)
    split = False
    if work.model:
        try:
            model_statistics(conn, work.model, work.version, timeout=_statistics_wait(deadline))
            split = True
        except EasnbError:
            split = False

    def level_of(value: float, tick: Callable[[float], None]) -> Level:
        return run_level(conn, work, mode, value, seconds, warmup, stop_error_rate, tick, deadline, max_in_flight, split, cancel)

    return _sweep(LoadReport(work.model or work.path, mode, split=split), levels, level_of, warmup + seconds, progress,
                  on_level, cancel)


def _sweep(report: LoadReport, levels: list[Any], run: Callable[[float, Callable[[float], None]], Level], each: float,
           progress: bool, on_level: Callable[[Level], None] | None, cancel: threading.Event) -> LoadReport:
    """Run each level in turn with a progress bar; Ctrl-C (or ``cancel``) keeps the levels finished."""
    bar = _bar(len(levels) * each, progress)
    try:
        for i, value in enumerate(levels):

            def tick(elapsed: float, base: float = i * each, value: float = value) -> None:
                if bar is not None:
                    bar.n = round(base + elapsed, 1)
                    bar.set_postfix_str(f"{report.mode} {value:g}", refresh=False)
                    bar.refresh()

            try:
                level = run(value, tick)
            except ClosedError:  # closed between levels: the levels finished are the report
                report.stopped = "stopped: the connection was closed"
                break
            if cancel.is_set():
                report.interrupted = True
                break
            level.client_limited = client_limit(level)
            report.levels.append(level)
            if on_level is not None:
                on_level(level)
            if level.stopped:
                report.stopped = level.stopped
                break
    except KeyboardInterrupt:
        cancel.set()
        report.interrupted = True
    finally:
        if bar is not None:
            bar.close()
    return report


def _first_call(conn: Link, work: Workload, seconds: float | None) -> None:
    """Send one request first, so a wrong model, input or token fails at once with its usual error."""
    stub = conn.channel.unary_unary(work.path)
    metadata = conn.metadata
    bound = seconds if seconds is not None else 60.0  # a hung server without deadlines cannot hold it for ever
    conn.call(work.model or work.path, lambda s: stub(work.requests[0], timeout=s, metadata=metadata), bound)


def _first_generation(conn: Link, model: str, prompt: str, options: dict[str, Any]) -> None:
    """One generation first, so a wrong model or prompt fails at once; replies easnb cannot read are the
    sweep's to count (as the unary first call leaves them), not a reason to refuse it."""
    from .loadcheck import UNREADABLE
    from .loadstream import failure_kind

    try:
        conn.generate(model, prompt, **options).finish()
    except EasnbError as exc:
        if failure_kind(exc) != UNREADABLE:
            raise


def _bar(total_seconds: float, enabled: bool) -> Any:
    if not enabled:
        return None
    from .progress import bar

    return bar(total=round(total_seconds, 1), unit="s", desc="load test", leave=True,
                bar_format="{desc}: {percentile}|{bar}| {n:.0f}/{total:.0f} s {postfix}".replace("{percentile}", "{percentage:3.0f}%"))
