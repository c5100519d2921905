"""The demo's statistics, as Triton's statistics extension reports them: counts and cumulative nanoseconds.

Each model keeps, since the server started: successful and failed requests (arrival to answer),
and for successful ones the time queued for a free model instance, decoding the request
(compute input), running the model (compute infer) and encoding the reply (compute output).

>>> stats = ModelStats(); stats.record({"queue": 10, "compute_infer": 5_000}, rows=1, ok=True)   # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .. import _proto

STAGES = ("queue", "compute_input", "compute_infer", "compute_output")


class ModelStats:
    """One model's cumulative statistics, safe to update from every server thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.durations = {name: [0, 0] for name in ("success", "fail", *STAGES)}  # name -> [count, ns]
        self.inference_count = 0
        self.execution_count = 0
        self.last_inference_ms = 0

    def record(self, stages_ns: Mapping[str, int], rows: int, ok: bool) -> None:
        """Count one request: its stages' nanoseconds (successful requests only), and its rows."""
        total = sum(stages_ns.values())
        with self._lock:
            outcome = self.durations["success" if ok else "fail"]
            outcome[0] += 1
            outcome[1] += total
            if ok:
                for stage in STAGES:
                    kept = self.durations[stage]
                    kept[0] += 1
                    kept[1] += stages_ns.get(stage, 0)
                self.inference_count += rows
                self.execution_count += 1
            self.last_inference_ms = int(time.time() * 1000)

    def fill(self, message: Any, name: str, version: str) -> None:
        """Write these statistics into a ``ModelStatistics`` message."""
        with self._lock:
            message.name, message.version = name, version
            message.last_inference = self.last_inference_ms
            message.inference_count = self.inference_count
            message.execution_count = self.execution_count
            for stage, (count, ns) in self.durations.items():
                duration = getattr(message.inference_stats, stage)
                duration.count, duration.ns = count, ns


def statistics_reply(stats: Mapping[str, ModelStats], versions: Mapping[str, str], names: Iterable[str]) -> Any:
    """A ``ModelStatisticsResponse`` for the models ``names`` (each at its latest version)."""
    reply = _proto.ModelStatisticsResponse()
    for name in names:
        stats[name].fill(reply.model_stats.add(), name, versions[name])
    return reply


class Clock:
    """Stage timing for one request: ``lap(stage)`` charges the time since the last lap to ``stage``."""

    def __init__(self) -> None:
        self.stages: dict[str, int] = {}
        self._last = time.perf_counter_ns()

    def lap(self, stage: str) -> None:
        now = time.perf_counter_ns()
        self.stages[stage] = self.stages.get(stage, 0) + now - self._last
        self._last = now
