"""The calls made through the inspectors: a table, latency percentiles, replay, and copy as code.

Copied code never holds the token: it reads ``$EASNB_TOKEN`` (shell) or
``os.environ["EASNB_TOKEN"]`` (Python).

>>> history = History()                       # doctest: +SKIP
>>> history.code(0, "tritonclient")           # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from . import arguments, display
from .call_record import Call, saved_inputs, summarize_inputs
from .errors import EasnbError

if TYPE_CHECKING:
    from .connection import Connection

FLAVOURS = ("easnb", "tritonclient", "grpcurl")
#: kinds of History entries that are whole sweeps, seconds long with their own percentiles: not in History's
SWEEPS = ("load", "compare")
LATENCY_MEANS = display.LATENCY_MEANS  # what a call's latency_ms covers


class History:
    """The session's calls; ``on_change(callback)`` hears of each new one."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._listeners: list[Callable[[History], None]] = []

    def __len__(self) -> int:
        return len(self.calls)

    def __iter__(self) -> Iterator[Call]:
        return iter(self.calls)

    def __getitem__(self, index: int) -> Call:
        return self.calls[index]

    def on_change(self, callback: Callable[[History], None]) -> None:
        self._listeners.append(callback)

    def record(self, conn: Connection, kind: str, name: str, summary: str, request: dict[str, Any], run: Callable[[], Any],
               outcome: Callable[[Any], str] | None = None) -> Any:
        """Run ``run()``, keep the call (errors too, then re-raised), and return its answer.

        Its status is ``"OK"``, the error's class (and gRPC code) when ``run()`` raised, or, given
        ``outcome``, what ``outcome(answer)`` says of an answer that may hold failures (a load sweep's).
        """
        return self.timed(conn, kind, name, summary, request, run, outcome)[0]

    def timed(
        self, conn: Connection, kind: str, name: str, summary: str, request: dict[str, Any], run: Callable[[], Any],
        outcome: Callable[[Any], str] | None = None,
    ) -> tuple[Any, Call]:
        """As ``record``, and the ``Call`` kept, whose ``latency_ms`` is the figure to show for it.

        The latency is measured once, around ``run()`` alone: for ``conn.infer`` that is encoding the
        request, the round trip (network and server) and decoding the reply; not the forms' own work
        (parsing the boxes, drawing tables) nor the listeners told afterwards.
        """
        status, answer = "OK", None
        started = time.perf_counter()
        try:
            answer = run()
            if outcome is not None:
                status = outcome(answer)
        except Exception as exc:
            code = getattr(exc, "code", None)
            status = f"{type(exc).__name__}" + (f" ({code.name})" if code is not None else "")
            raise
        finally:
            latency = (time.perf_counter() - started) * 1000
            headers = dict(getattr(conn, "headers", None) or {})
            call = Call(datetime.now(), kind, conn.endpoint.target, conn.endpoint.tls, name, summary, status, latency, request, headers)
            self.calls.append(call)
            for listener in self._listeners:
                listener(self)
        return answer, call

    # -- views ---------------------------------------------------------------------------

    def to_frame(self) -> Any:
        """The calls as a DataFrame: time, kind, target, model or method, inputs, status, latency."""
        import pandas as pd

        rows = [
            {"time": c.when.strftime("%H:%M:%S"), "kind": c.kind, "target": c.target, "call": c.name,
             "inputs": c.summary, "status": c.status, "latency_ms": round(c.latency_ms, 2)}
            for c in self.calls
        ]
        return pd.DataFrame(rows, columns=["time", "kind", "target", "call", "inputs", "status", "latency_ms"])

    def latencies(self, kind: str) -> list[float]:
        """The latencies (ms) of the calls of ``kind`` (``"infer"``, ``"generate"``, ...) that succeeded."""
        return [c.latency_ms for c in self.calls if c.status == "OK" and c.kind == kind]

    def percentiles(self, kind: str | None = None) -> dict[str, float]:
        """p50, p90 and p99 latency (ms) of the calls of ``kind`` that succeeded (a generation's seconds and an
        infer's milliseconds are not one distribution); by default of the kind made most but the sweeps (load and
        compare runs, seconds long, with percentiles of their own)."""
        if kind is None:
            kinds = self.kinds()
            if not kinds:
                return {}
            kind = kinds[0]
        latencies = self.latencies(kind)
        if not latencies:
            return {}
        p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
        return {"p50": float(p50), "p90": float(p90), "p99": float(p99)}

    def kinds(self) -> list[str]:
        """The kinds of the calls that succeeded, most made first, but the sweeps (``SWEEPS``)."""
        made = Counter(c.kind for c in self.calls if c.status == "OK" and c.kind not in SWEEPS)
        return [kind for kind, _ in made.most_common()]

    def _repr_html_(self) -> str:
        return display.history_html(self)

    # -- again, and as code ----------------------------------------------------------------

    def replay(self, index: int, conn: Connection) -> Any:
        """Make call ``index`` again on ``conn`` (recorded as a new call) and return its answer."""
        call = self.calls[index]
        r = call.request
        if call.kind == "metadata":
            return self.record(conn, "metadata", r["model"], call.summary, r, lambda: conn.model_metadata(r["model"], r.get("version", "")))
        if call.kind == "generate":  # waited for to the end
            return self.record(conn, "generate", r["model"], call.summary, r, lambda: conn.generate(
                r["model"], r["prompt"], version=r.get("version", ""), **r["sampling"]).finish())
        if call.kind in ("load", "compare"):
            raise EasnbError(f"A {call.kind} is not replayed from History.", hint=f"Run it again from the {call.kind.title()} tab.")
        if call.kind == "infer":
            inputs = _inputs_from(r["inputs"])
            return self.record(
                conn, "infer", r["model"], call.summary, r,
                lambda: conn.infer(r["model"], inputs, r.get("outputs") or None, r.get("version", ""), r.get("parameters") or None),
            )
        if call.kind != "service":
            raise EasnbError(f"A {call.kind!r} call is not one History can make again.", hint="Make it again where it was made.")
        client = conn.service(r["proto"], r["service"]) if r.get("proto") else conn.service(r["service"])
        method = client.methods[r["method"]]
        return self.record(conn, "service", call.name, call.summary, r, lambda: _call_service(method, r["requests"]))

    def code(self, index: int, flavour: str = "easnb") -> str:
        """Call ``index`` as code to paste: ``easnb``, ``tritonclient`` (V2 only) or ``grpcurl``."""
        from . import codegen

        flavour = arguments.choice(flavour, "flavour", FLAVOURS)
        text: str = getattr(codegen, flavour)(self.calls[index])
        return text


def _inputs_from(saved: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from .tensors import Tensor

    return {name: Tensor(t["array"], t["datatype"]) for name, t in saved.items()}


def _call_service(method: Any, requests: list[dict[str, Any]]) -> Any:
    from .services import iter_replies

    answer = method(requests) if method.client_streaming else method(requests[0])
    return list(iter_replies(answer)) if method.server_streaming else answer


__all__ = ["FLAVOURS", "LATENCY_MEANS", "Call", "History", "saved_inputs", "summarize_inputs"]
