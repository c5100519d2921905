"""A load sweep's results: one row per level, a latency-versus-throughput chart, JSON to keep.

The chart is SVG drawn here (no plotting library needed): p50 and p99 latency against
throughput, and at each level a stacked bar of where the mean request's time went, as the
server reported it (queue, compute input, compute infer, compute output) with the rest,
network and client, on top. Every value shown is escaped.

>>> report.frame; report.to_json(); report.plot()     # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .loadcheck import UNREADABLE
from .markup import Markup, escape
from .statistics import STAGES

#: A level during which this process kept this much of one core busy describes the client, not the server.
CLIENT_BUSY = 0.6
#: Nor does one where the client's own CPU per request is this share of the latency it measured: that
#: much of each request may be the client's work (10%, the agreement asked of it against perf_analyzer).
CLIENT_SHARE = 0.10
COLOURS = {"queue": "#e45756", "compute_input": "#f58518", "compute_infer": "#4c78a8", "compute_output": "#72b7b2",
           "network_client": "#bab0ac"}
LABELS = {"queue": "queue", "compute_input": "compute input", "compute_infer": "compute infer",
          "compute_output": "compute output", "network_client": "network and client"}


@dataclass
class Level:
    """One level's measurement. Latencies in milliseconds, CPU in microseconds per request.

    ``server_ms`` is the server's own mean split per request (empty when it reports none);
    ``client_busy`` the cores this process used while measuring (a server running in the same
    process, like a notebook's demo, counts too); ``client_limited``
    says why the numbers describe the client rather than the server ("" when they do not).
    ``errors`` counts failed requests by kind: gRPC's codes, ``UNREADABLE_REPLY`` for replies easnb
    cannot read (``NO_TEXT_OUTPUT``: a generation without text); ``error_messages`` what a kind's first said.
    """

    mode: str
    level: float
    seconds: float
    requests: int
    errors: dict[str, int]
    infer_per_s: float
    rows_per_s: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    server_ms: dict[str, float]
    server_requests: int
    client_cpu_us: float
    client_busy: float
    late_p90_ms: float = 0.0
    not_sent: int = 0
    stopped: str = ""
    client_limited: str = ""
    stream: dict[str, float] = field(default_factory=dict)  # streaming models: ttft_*, itl_*, tokens_per_s
    error_messages: dict[str, str] = field(default_factory=dict)  # kind of error -> what the first one said, where kept
    machine_load: float = 0.0  # the 1-minute load average when the level ended, and the machine's cores
    cores: int = 0
    # each request's start (open loop: when it was due), seconds into the window, and its latency, in that order
    started_s: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    latency_ms: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def network_client_ms(self) -> float:
        """Mean client latency minus the server's reported total: the network and the client."""
        return self.mean_ms - sum(self.server_ms.values()) if self.server_ms else float("nan")

    def summary(self) -> dict[str, Any]:
        """The row of ``LoadReport.frame`` (and of ``to_json``), without the per-request arrays."""
        row: dict[str, Any] = {
            self.mode: self.level, "requests": self.requests, "errors": sum(self.errors.values()),
            "errors_by_code": ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())),
            "infer_per_s": self.infer_per_s, "rows_per_s": self.rows_per_s,
            "p50_ms": self.p50_ms, "p90_ms": self.p90_ms, "p95_ms": self.p95_ms, "p99_ms": self.p99_ms,
            "max_ms": self.max_ms, "mean_ms": self.mean_ms, **self.stream,
        }
        for stage in STAGES:
            row[f"server_{stage}_ms"] = self.server_ms.get(stage, float("nan"))
        row["network_client_ms"] = self.network_client_ms
        row["client_cpu_us"] = self.client_cpu_us
        row["machine_load"] = self.machine_load
        if self.mode == "rate":
            row["late_p90_ms"], row["not_sent"] = self.late_p90_ms, self.not_sent
        row["client_limited"] = self.client_limited
        return row


def client_limit(level: Level) -> str:
    """Why ``level`` measured the client rather than the server, or "" when it did not (or measured nothing)."""
    if math.isnan(level.mean_ms):  # no request succeeded: there is nothing the client could have set
        return ""
    reasons = []
    share = level.client_cpu_us / (level.mean_ms * 1000) if level.mean_ms > 0 else 0.0
    if share >= CLIENT_SHARE:
        reasons.append(f"the client's own CPU was {share:.0%} of a request's latency "
                       f"({level.client_cpu_us:.0f} µs of {level.mean_ms:.2f} ms)")
    if level.cores and level.machine_load > level.cores:
        reasons.append(f"this machine was busy (load {level.machine_load:.1f} on {level.cores} cores), "
                       "so its CPU may set these figures rather than the server")
    if level.client_busy >= CLIENT_BUSY:
        reasons.append(f"the client used {level.client_busy:.0%} of a core ({level.client_cpu_us:.0f} µs of CPU a request)")
    if level.mode == "rate":
        if level.not_sent:
            reasons.append(f"{level.not_sent} requests were not sent (too many in flight)")
        slack = max(5.0, 1000.0 / level.level)  # a whole interval between requests behind, and at least 5 ms
        if level.late_p90_ms > slack:
            reasons.append(f"requests left {level.late_p90_ms:.1f} ms after they were due (p90)")
    return "; ".join(reasons)


@dataclass
class LoadReport:
    """The levels of one sweep: ``.frame``, an HTML repr with a chart, ``.plot()``, ``.to_json()``."""

    name: str
    mode: str
    levels: list[Level] = field(default_factory=list)
    split: bool = False  # whether the server reported its split (Triton's statistics extension)
    interrupted: bool = False
    stopped: str = ""

    @property
    def frame(self) -> Any:
        """One row per level (see ``Level.summary``), indexed by level."""
        import pandas as pd

        frame = pd.DataFrame([level.summary() for level in self.levels])
        if not len(frame):
            return frame
        if not self.split:
            frame = frame.drop(columns=[c for c in frame.columns if c.startswith("server_") or c == "network_client_ms"])
        return frame.set_index(self.mode)

    def to_json(self) -> str:
        """The report as JSON text (NaN as null), to keep or compare later; ``notes`` are ``error_notes``."""
        return json.dumps(_clean({
            "name": self.name, "mode": self.mode, "server_split": self.split, "interrupted": self.interrupted,
            "stopped": self.stopped, "notes": error_notes(self),
            "levels": [{**level.summary(), "error_messages": level.error_messages} for level in self.levels],
        }), indent=1)

    def __repr__(self) -> str:
        state = " (interrupted)" if self.interrupted else f" ({self.stopped})" if self.stopped else ""
        return f"<LoadReport {self.name!r}: {len(self.levels)} {self.mode} levels{state}>"

    def _repr_html_(self) -> str:
        return report_html(self)

    def plot(self) -> Any:
        """A matplotlib figure of the chart (needs matplotlib: ``pip install matplotlib``)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            from .errors import EasnbError

            raise EasnbError("plot() needs matplotlib.", hint="pip install matplotlib; the HTML repr needs nothing.") from None
        figure, ax = plt.subplots(figsize=(7, 4))
        x = [lv.infer_per_s for lv in self.levels]
        ax.plot(x, [lv.p50_ms for lv in self.levels], "o-", label="p50")
        ax.plot(x, [lv.p99_ms for lv in self.levels], "s--", label="p99")
        width = max(x) * 0.03 if x and max(x) > 0 else 1.0
        bottom = np.zeros(len(self.levels))
        for part, values in _stacks(self.levels).items():
            ax.bar(x, values, width=width, bottom=bottom, color=COLOURS[part], alpha=0.6, label=LABELS[part])
            bottom += values
        ax.set_xlabel("throughput (infer/s)")
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"{self.name}: latency against throughput")
        ax.legend(fontsize="small")
        return figure


def error_notes(report: LoadReport) -> list[str]:
    """The errors in words, a line per level that had them: every level whose requests all failed (nothing
    was measured), and every level with a kind of error that kept what it said (replies easnb cannot read)."""
    notes = []
    for lv in report.levels:
        failed = sum(lv.errors.values())
        if not lv.requests:  # a hung server, or nothing sent: a dead level all the same (`easnb load` exits 1)
            unsent = f"; {lv.not_sent} were not sent (too many in flight)" if lv.not_sent else ""
            notes.append(f"{lv.mode} {lv.level:g}: no request was answered in the window, so nothing was measured{unsent}")
            continue
        if not failed or (failed < lv.requests and not lv.error_messages):
            continue
        kinds = "; ".join(_kind(kind, count, lv.error_messages.get(kind, "")) for kind, count in sorted(lv.errors.items()))
        if failed >= lv.requests:
            notes.append(f"{lv.mode} {lv.level:g}: every request failed, so nothing was measured: {kinds}")
        else:
            notes.append(f"{lv.mode} {lv.level:g}: {failed} of {lv.requests} requests failed: {kinds}")
    return notes


def dead_levels(report: LoadReport) -> list[Level]:
    """The levels where no request succeeded (nothing was measured there)."""
    return [lv for lv in report.levels if lv.requests <= sum(lv.errors.values())]


def outcome(report: LoadReport) -> str:
    """The sweep's status in a line, as History shows it: ``"OK"`` when every request succeeded;
    ``"failed: ..."`` when some level had no success at all; ``"partly failed: ..."`` when requests failed
    but every level had successes (each with the error counts by kind); the sweep's early stop (or the
    user's Stop), if any."""
    failed: Counter[str] = Counter()
    for lv in report.levels:
        failed.update(lv.errors)
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(failed.items()))
    requests, errors = sum(lv.requests for lv in report.levels), sum(failed.values())
    dead = [f"{lv.level:g}" for lv in dead_levels(report)]
    if dead:
        words = f"failed: no request succeeded at {report.mode} {', '.join(dead)}" + (f" ({kinds})" if kinds else "")
    elif errors:
        words = f"partly failed: {errors} of {requests} requests failed ({kinds})"
    else:
        words = "OK"
    stop = "stopped by the user: the levels that finished are shown" if report.interrupted else report.stopped
    if not stop:
        return words
    return stop if words == "OK" else f"{words}; {stop}"


def _kind(kind: str, count: int, message: str) -> str:
    if kind == UNREADABLE:
        return f"{count} {kind} (replies easnb cannot read; the first: {message})"
    return f"{count} {kind} ({message})" if message else f"{count} {kind}"


def _stacks(levels: list[Level]) -> dict[str, np.ndarray]:
    """Per part of the split, each level's mean milliseconds (empty when no level has a split)."""
    if not any(lv.server_ms for lv in levels):
        return {}
    parts = {s: np.array([lv.server_ms.get(s, 0.0) for lv in levels]) for s in STAGES}
    parts["network_client"] = np.array([max(0.0, lv.network_client_ms) if lv.server_ms else 0.0 for lv in levels])
    return parts


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def _number(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:,.1f}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def report_html(report: LoadReport, chart: bool = True) -> Markup:
    """The table and (unless ``chart=False``) the chart, every value escaped."""
    head = f"<b>{escape(report.name)}</b>: {len(report.levels)} levels of {escape(report.mode)}"
    # a wide table widens the report: the notes wrap at a width one can read without scrolling
    errors = "".join(f"<div class='easnb-load-errors' style='max-width:60em;white-space:normal;overflow-wrap:anywhere'><b>⚠ {escape(n)}</b></div>"
                     for n in error_notes(report))
    notes = []
    if report.interrupted:
        notes.append("interrupted: the levels that finished are shown")
    if report.stopped:
        notes.append(report.stopped)
    if not report.split:
        notes.append("the server reports no split of its time (Triton's statistics extension)")
    limited = [lv for lv in report.levels if lv.client_limited]
    if limited:
        notes.append(f"{len(limited)} levels were limited by this client, not the server (marked ⚠)")
    frame = report.frame
    rows = []
    if len(frame):
        columns = [c for c in frame.columns if c != "client_limited"]
        header = "".join(f"<th>{escape(str(c))}</th>" for c in [report.mode, *columns])
        for (index, row), level in zip(frame.iterrows(), report.levels):
            mark = f" <span title='{escape(level.client_limited)}'>⚠</span>" if level.client_limited else ""
            cells = "".join(f"<td>{escape(_number(row[c]))}</td>" for c in columns)
            rows.append(f"<tr><td>{escape(_number(index))}{mark}</td>{cells}</tr>")
        table = (f"<div style='overflow-x:auto'><table class='easnb-load'><thead><tr>{header}</tr></thead>"
                 f"<tbody>{''.join(rows)}</tbody></table></div>")
    else:
        table = "<i>No level finished.</i>"
    note = "".join(f"<div><small>{escape(n)}</small></div>" for n in notes)
    return Markup(f"<div class='easnb-load-report'><div>{head}</div>{errors}{note}{table}{chart_svg(report.levels) if chart else ''}</div>")


def chart_svg(levels: list[Level], width: int = 520, height: int = 260) -> Markup:
    """Latency (ms) against throughput (infer/s): p50 and p99 lines, the split as stacked bars."""
    shown = [lv for lv in levels if not math.isnan(lv.p50_ms)]
    if not shown:
        return Markup("")
    left, bottom, top, right = 50, 30, 12, 130
    plot_w, plot_h = width - left - right, height - top - bottom
    x_max = max(lv.infer_per_s for lv in shown) * 1.1 or 1.0
    y_max = max(max(lv.p99_ms, lv.mean_ms) for lv in shown) * 1.1 or 1.0

    def x(v: float) -> float:
        return left + plot_w * v / x_max

    def y(v: float) -> float:
        return top + plot_h * (1 - v / y_max)

    parts = [f"<svg class='easnb-load-chart' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             "font-size='10' font-family='sans-serif'>"]
    parts.append(f"<line x1='{left}' y1='{top + plot_h}' x2='{left + plot_w}' y2='{top + plot_h}' stroke='currentColor'/>")
    parts.append(f"<line x1='{left}' y1='{top}' x2='{left}' y2='{top + plot_h}' stroke='currentColor'/>")
    for frac in (0, 0.5, 1):
        parts.append(f"<text x='{x(x_max * frac / 1.1):.1f}' y='{height - 16}' text-anchor='middle' fill='currentColor'>"
                     f"{escape(f'{x_max * frac / 1.1:,.0f}')}</text>")
        parts.append(f"<text x='{left - 4}' y='{y(y_max * frac / 1.1) + 3:.1f}' text-anchor='end' fill='currentColor'>"
                     f"{escape(_number(y_max * frac / 1.1))}</text>")
    parts.append(f"<text x='{left + plot_w / 2}' y='{height - 3}' text-anchor='middle' fill='currentColor'>throughput (infer/s)</text>")
    parts.append(f"<text x='10' y='{top + plot_h / 2}' transform='rotate(-90 10 {top + plot_h / 2})' text-anchor='middle' "
                 "fill='currentColor'>latency (ms)</text>")
    bar = 10
    stacks = _stacks(shown)
    base = np.zeros(len(shown))
    for part, values in stacks.items():
        for i, (lv, v) in enumerate(zip(shown, values)):
            if v > 0:
                tip = f"{lv.mode} {_number(lv.level)}: {LABELS[part]} {v:.2f} ms"
                parts.append(f"<rect class='easnb-split' x='{x(lv.infer_per_s) - bar / 2:.1f}' y='{y(base[i] + v):.1f}' "
                             f"width='{bar}' height='{max(0.5, y(base[i]) - y(base[i] + v)):.1f}' fill='{COLOURS[part]}' "
                             f"opacity='0.7'><title>{escape(tip)}</title></rect>")
        base += values
    for name, key, dash in (("p50", "p50_ms", ""), ("p99", "p99_ms", " stroke-dasharray='4 3'")):
        points = " ".join(f"{x(lv.infer_per_s):.1f},{y(getattr(lv, key)):.1f}" for lv in shown)
        parts.append(f"<polyline points='{points}' fill='none' stroke='currentColor'{dash}/>")
        for lv in shown:
            tip = f"{lv.mode} {_number(lv.level)}: {_number(lv.infer_per_s)} infer/s, {name} {getattr(lv, key):.2f} ms"
            parts.append(f"<circle cx='{x(lv.infer_per_s):.1f}' cy='{y(getattr(lv, key)):.1f}' r='3' fill='currentColor'>"
                         f"<title>{escape(tip)}</title></circle>")
    legend = [("p50 (line)", "currentColor"), ("p99 (dashed)", "currentColor")]
    legend += [(LABELS[p], COLOURS[p]) for p in stacks]
    for i, (label, colour) in enumerate(legend):
        parts.append(f"<rect x='{width - right + 10}' y='{top + i * 14}' width='10' height='10' fill='{colour}'/>"
                     f"<text x='{width - right + 24}' y='{top + i * 14 + 9}' fill='currentColor'>{escape(label)}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))


def machine_load() -> float:
    """The machine's load average over the last minute (0.0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return 0.0
