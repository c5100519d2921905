"""What one level of a load sweep records, and the closed loop's callers on the connection's sync channel.

The per-request path is kept as close to a bare stub call as it can be: a caller sends pre-encoded
request bytes through the connection's sync channel (its interceptors and metadata included) and keeps
one timestamp pair per request, plus the code of a failure; the reply is not decoded, only checked
(``easnb.loadcheck``, after its end is timed): one easnb cannot read is a failure of its own kind. What a
level measured (window, percentiles, errors by code, throughput) is worked out once it ends
(``summarise``).

>>> run = LevelRun((t0 + 1, t0 + 11), rows=[1]); threads = closed_callers(run, stub, work, 4, 10.0, ())  # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
from array import array
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np

from .loadcheck import UNREADABLE, reason
from .loadreport import Level, machine_load
from .redaction import redact

if TYPE_CHECKING:
    from .loadwork import Workload
    from .statistics import ModelStatistics

#: Calls of a closed loop end this many seconds after the window at the latest (a hung server without
#: deadlines cannot hold a sweep): they are not counted anyway, the window counts the answers inside it.
HUNG_S = 1.0


class Record:
    """What one sender saw: when each request started (open loop: when it was due) and ended, in order
    of ending; its failures as ``(position, code)``; which request each was (closed loop: the ``k``-th
    is ``requests[(slot + k * step) % n]``, so nothing is kept; open loop: ``index``); how late the
    open loop's requests left (seconds)."""

    __slots__ = ("starts", "ends", "failures", "index", "late", "slot", "step")

    def __init__(self, slot: int = 0, step: int = 1, indexed: bool = False) -> None:
        self.starts = array("d")  # 8 bytes a request, no float object kept
        self.ends = array("d")
        self.failures: list[tuple[int, str]] = []
        self.index = array("q") if indexed else None
        self.late = array("d")
        self.slot, self.step = slot, step


class LevelRun:
    """One level's run: its senders' records, the stop flag, the measured window (``perf_counter``
    seconds), the rows of each request of the workload, and what ended it early."""

    def __init__(self, window: tuple[float, float], rows: Sequence[int], due: bool = False, token: Any = None) -> None:
        self.window = window
        self.token = token  # taken out of what a server's reply said before it is kept
        self.due = due  # open loop: every request due inside the window counts, however late it ends
        self.rows = np.asarray(rows, dtype=np.int64)
        self.stop = threading.Event()
        self.records: list[Record] = []
        self.not_sent = 0
        self.cpu = [0.0, 0.0]  # the process's CPU seconds when the window opened and closed
        self.ended: list[BaseException] = []  # the connection closed under the senders
        self.messages: dict[str, str] = {}  # a reason for each kind of failure that has one (the first seen)

    def record(self, slot: int = 0, step: int = 1, indexed: bool = False) -> Record:
        made = Record(slot, step, indexed)
        self.records.append(made)
        return made

    def counts(self) -> tuple[int, int]:
        """Answers so far (warm-up included) and how many of them failed: for the error rate."""
        records = list(self.records)
        return sum(len(r.ends) for r in records), sum(len(r.failures) for r in records)

    def unreadable(self, record: Record, problem: str) -> None:
        """The request ``record`` is about to add was answered with a reply easnb cannot read (``problem``)."""
        record.failures.append((len(record.starts), UNREADABLE))
        if UNREADABLE not in self.messages:
            self.messages[UNREADABLE] = reason(redact(problem, self.token))

    def end(self, exc: BaseException) -> None:
        self.ended.append(exc)
        self.stop.set()


def code_of(exc: grpc.RpcError) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


def closed_callers(run: LevelRun, call: Any, work: Workload, callers: int, deadline: float | None, metadata: Any,
                   closed: Callable[[], bool]) -> list[threading.Thread]:
    """``callers`` threads (started), each sending its next request on ``call`` (a sync bytes-in stub) as
    soon as the last is answered, until the window's end or the stop flag; ``closed()`` tells a failure
    of the connection closing under them (which ends the level) from the server's."""
    requests, n, check = work.requests, len(work.requests), work.check
    last, cap = run.window[1], run.window[1] + HUNG_S
    metadata = metadata or None

    def caller(record: Record) -> None:
        starts, ends, failures = record.starts.append, record.ends.append, record.failures
        clock, stopped = time.perf_counter, run.stop.is_set
        i = record.slot
        while not stopped():
            start = clock()
            if start >= last:
                return
            left = cap - start
            try:
                reply = call(requests[i % n], timeout=left if deadline is None or deadline > left else deadline,
                             metadata=metadata)
            except grpc.RpcError as exc:
                if closed():
                    run.end(exc)
                    return
                failures.append((len(record.starts), code_of(exc)))
                reply = None
            except Exception as exc:  # the channel closed under the call ("Cannot invoke RPC on closed channel")
                run.end(exc)
                return
            ends(clock())
            if reply is not None:
                problem = check(reply)
                if problem:
                    run.unreadable(record, problem)
            starts(start)
            i += callers

    threads = [threading.Thread(target=caller, args=(run.record(slot, callers),), name="easnb-load", daemon=True)
               for slot in range(callers)]
    for thread in threads:
        thread.start()
    return threads


def summarise(run: LevelRun, mode: str, level: float, seconds: float, server: ModelStatistics | None,
              reason: str) -> Level:
    """A ``Level`` from what the senders recorded: closed loop, the requests answered inside the window
    (however early they started, as perf_analyzer counts); open loop, those due inside it (however late
    they end). Throughput counts the successful answers inside the window whenever sent or due."""
    starts, ends, index, bad, codes = [], [], [], [], []
    n = max(1, len(run.rows))
    for r in list(run.records):
        m = len(r.starts)  # appended last: senders still running (abandoned at a stop) add nothing seen here
        starts.append(np.array(r.starts[:m], dtype=float))  # a slice is a copy: a sender still appending is not held
        ends.append(np.array(r.ends[:m], dtype=float))
        index.append(np.array(r.index[:m], dtype=np.int64) if r.index is not None else (r.slot + r.step * np.arange(m)) % n)
        failed = np.zeros(m, dtype=bool)
        code = np.full(m, "OK", dtype=object)
        for position, name in list(r.failures):
            if position < m:
                failed[position], code[position] = True, name
        bad.append(failed)
        codes.append(code)
    start, end = (np.concatenate(starts), np.concatenate(ends)) if starts else (np.zeros(0), np.zeros(0))
    failed = np.concatenate(bad) if bad else np.zeros(0, dtype=bool)
    code = np.concatenate(codes) if codes else np.zeros(0, dtype=object)
    rows = run.rows[np.concatenate(index) % n] if index and len(run.rows) else np.ones(len(start), dtype=np.int64)
    w0, w1 = run.window
    inside = (end >= w0) & (end <= w1)
    counted = start >= w0 if run.due else inside
    answered = inside & ~failed
    errors: dict[str, int] = {}
    for name in code[counted & failed]:
        errors[name] = errors.get(name, 0) + 1
    latency = (end[counted] - start[counted]) * 1000
    good = latency[~failed[counted]]
    started = start[counted] - w0
    order = np.argsort(started, kind="stable")
    requests = int(counted.sum())
    cpu = run.cpu[1] - run.cpu[0] if run.cpu[0] else 0.0
    late = np.concatenate([np.array(r.late[:], dtype=float) for r in run.records]) * 1000 if run.records else np.zeros(0)
    p = np.percentile(good, [50, 90, 95, 99]) if len(good) else [np.nan] * 4
    return Level(
        mode=mode, level=level, seconds=seconds, requests=requests, errors=errors,
        error_messages={k: v for k, v in run.messages.items() if k in errors},
        infer_per_s=int(answered.sum()) / seconds, rows_per_s=float(rows[answered].sum()) / seconds,
        p50_ms=float(p[0]), p90_ms=float(p[1]), p95_ms=float(p[2]), p99_ms=float(p[3]),
        max_ms=float(good.max()) if len(good) else float("nan"), mean_ms=float(good.mean()) if len(good) else float("nan"),
        server_ms=server.per_request_ms() if server is not None else {},
        server_requests=server.success if server is not None else 0,
        client_cpu_us=cpu / max(1, requests) * 1e6, client_busy=cpu / seconds,
        late_p90_ms=float(np.percentile(late, 90)) if len(late) else 0.0, not_sent=run.not_sent,
        stopped=reason, machine_load=machine_load(), cores=os.cpu_count() or 0,
        started_s=started[order], latency_ms=latency[order],
    )
