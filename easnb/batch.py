"""Score a whole DataFrame: batches, several in flight on one channel, retries, progress.

>>> scores = conn.infer_frame("iris", df, batch_size=1000, concurrency=8)   # doctest: +SKIP
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np

from . import log
from .calls import DEFAULT, Ask, Plan, run_plan
from .credentials import Headers
from .errors import BatchError, EasnbError, TensorError, scrub  # noqa: F401 - BatchError importable from here
from .rpc_errors import from_rpc_error
from .inference import decode_response, encode_request
from .tensors import Tensor

if TYPE_CHECKING:
    import pandas as pd

    from .link import Link
    from .results import InferResult, ModelMetadata

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
#: Failures that say the server itself is gone or hung, rather than one batch being bad.
SERVER_GONE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
#: After this many such failures in a row, with no batch scored in between, stop sending.
GONE_AFTER = 3


@dataclass(frozen=True)
class BatchFailure:
    """Rows ``start:stop`` (positions in the frame) that could not be scored, and why."""

    start: int
    stop: int
    error: EasnbError


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from .progress import bar

    return bar(total=total, unit="rows", desc="scoring", leave=True)  # whole lines when there is no terminal


def fixed_batch(meta: ModelMetadata) -> int | None:
    """The batch size a model's inputs fix (``[1, 4]`` fixes 1), or ``None`` when it is free."""
    sizes = {t.shape[0] for t in meta.inputs if len(t.shape) >= 2 and t.shape[0] > 0}
    if len(sizes) > 1:
        raise TensorError(f"Model {meta.name!r} fixes different batch sizes on its inputs: {sorted(sizes)}.")
    return sizes.pop() if sizes else None


class _Shape:
    """What the first scored batch returned, which later batches must return too, and the arrays
    (``rows`` long) that every batch's answers are copied into."""

    def __init__(self, result: InferResult, rows: int) -> None:
        self.datatypes = dict(result.datatypes)
        self.trailing = {n: a.shape[1:] for n, a in result.outputs.items()}
        self.arrays = {n: np.empty((rows, *a.shape[1:]), a.dtype) for n, a in result.outputs.items()}

    def problem(self, result: InferResult, rows: int) -> str | None:
        """What is wrong with a batch of ``rows`` rows; checked in one comparison when nothing is."""
        shapes = {n: a.shape for n, a in result.outputs.items()}
        if result.datatypes == self.datatypes and shapes == {n: (rows, *t) for n, t in self.trailing.items()}:
            return None
        wrong = {n: shape[:1] for n, shape in shapes.items() if shape[:1] != (rows,)}
        if wrong:
            return f"the model returned {wrong} rows for a batch of {rows}"
        if set(result.datatypes) != set(self.datatypes):
            return f"outputs {list(result.datatypes)} differ from the first batch's {list(self.datatypes)}"
        for name, shape in shapes.items():
            if result.datatypes[name] != self.datatypes[name]:
                return f"output {name!r} is {result.datatypes[name]}, not {self.datatypes[name]} as in the first batch"
            if shape[1:] != self.trailing[name]:
                return f"output {name!r} has rows of shape {list(shape[1:])}, not {list(self.trailing[name])}"
        return None


def infer_frame(conn: Link, model: str, frame: pd.DataFrame, *args: Any, **options: Any) -> pd.DataFrame:
    """``frame_plan`` on a sync connection (see it for the arguments)."""
    return run_plan(conn, frame_plan(conn, model, frame, *args, **options))


def frame_plan(
    conn: Any,
    model: str,
    frame: pd.DataFrame,
    batch_size: int = 1024,
    concurrency: int = 8,
    outputs: list[str] | None = None,
    retries: int = 2,
    progress: bool = True,
    errors: str = "raise",
    version: str = "",
    timeout: Any = DEFAULT,
    *,
    retry_deadline: bool = False,
    parameters: Mapping[str, Any] | None = None,
    headers: Headers | None = None,
    columns: dict[str, list[str]] | None = None,
) -> Plan[pd.DataFrame]:
    """Score ``frame`` in batches; the result is aligned with ``frame.index``.

    - ``retries``: UNAVAILABLE and RESOURCE_EXHAUSTED batches are sent again with backoff.
      DEADLINE_EXCEEDED batches are not, since the server may have run them already;
      ``retry_deadline=True`` opts into that at-least-once behaviour.
    - ``timeout``: each batch's deadline; ``DEFAULT`` (or leaving it out) is the
      connection's timeout and ``None`` means no deadline, as for every other call.
    - ``parameters`` and ``headers`` go with every batch; ``columns`` maps input names to
      the columns stacked into each, for models that declare no inputs.
    - A model whose inputs fix the batch dimension (``[1, 4]``) is sent that many rows at
      a time; a frame whose length does not divide is refused before anything is sent.
    - When the server is gone (three UNAVAILABLE or DEADLINE_EXCEEDED batches in a row,
      after their retries, with none scored in between) no new batch is sent and the
      rest are reported at once.
    - Every batch must return the outputs, datatypes and row shapes of the first;
      one that does not is a failed batch with a ``TensorError``.

    Failed batches raise ``BatchError`` (``.partial`` holds every scored row), or with
    ``errors="keep"`` come back as rows with an ``error`` column (always present).
    """
    from .arguments import frame_call
    from .frames import empty_frame, frame_to_inputs

    model, batch_size, concurrency, outputs, retries, progress, errors, version, timeout, retry_deadline, columns = frame_call(
        model, frame, batch_size, concurrency, outputs, retries, progress, errors, version, timeout, retry_deadline,
        parameters, headers, columns,
    )
    conn.check_open()
    seconds = conn.deadline(timeout)
    metadata = conn.metadata_for(headers)
    meta = yield Ask("cached_model_metadata", (model, version), {"headers": headers})
    fixed = fixed_batch(meta)
    if fixed is not None:
        if len(frame) % fixed:
            raise TensorError(
                f"Model {model!r} takes exactly {fixed} rows per call, and {len(frame)} rows do not divide into that.",
                hint=f"Pass a frame whose length is a multiple of {fixed}.",
            )
        batch_size = fixed
    # columns are matched once; each batch is then a slice of the same arrays
    tensors = frame_to_inputs(frame, meta, columns, token=conn.settings.token)
    ranges = [(start, min(start + batch_size, len(frame))) for start in range(0, len(frame), batch_size)]
    run = _Run(conn, model, tensors, ranges, outputs, version, parameters, seconds, metadata, retries, retry_deadline)
    run.bar = _progress(len(frame), progress)
    try:
        yield Ask("run_batches", (run, concurrency))  # on the connection's own loop: sync or asyncio
    finally:
        if run.bar is not None:
            run.bar.close()
    shape = run.shape
    return _assemble(
        frame, ranges, run.scored, shape.arrays if shape else {}, shape.datatypes if shape else {}, run.failures, errors,
        lambda: empty_frame(meta, outputs),
    )


class _Run:
    """One infer_frame run on the connection's background loop: ``concurrency`` workers take batches
    in order, send them on the grpc.aio channel, retry, check, and keep every answer by batch number.

    Each worker keeps one call in flight and does its Python work (decoding the reply it got,
    encoding the request after next) while the following call flies."""

    def __init__(
        self, conn: Any, model: str, tensors: dict[str, Tensor], ranges: list[tuple[int, int]],
        outputs: list[str] | None, version: str, parameters: Mapping[str, Any] | None, seconds: float | None,
        metadata: Any, retries: int, retry_deadline: bool,
    ) -> None:
        self.conn, self.model, self.tensors, self.ranges = conn, model, tensors, ranges
        self.outputs, self.version, self.parameters = outputs, version, parameters
        self.seconds, self.metadata, self.retries = seconds, metadata, retries
        self.retryable = RETRYABLE | ({grpc.StatusCode.DEADLINE_EXCEEDED} if retry_deadline else set())
        self.scored: set[int] = set()  # batches whose rows are in ``arrays``
        self.failures: dict[int, BatchFailure] = {}
        self.shape: _Shape | None = None
        self.gone_streak = 0
        self.server_gone = False  # decided once, for good: a reply decoded later does not undo it
        self.bar: Any = None
        self.few = False  # few calls in flight: overlap each call with the handling of the last reply
        self.debug = log.debugging()
        self.target = conn.endpoint.target
        self._sent: dict[int, float] = {}  # when each call in flight was sent (only when DEBUG is on)
        self._next = 0

    async def score(self, concurrency: int, stub: Any) -> None:
        """Send every batch with ``stub`` (bytes in, an awaitable of bytes out), ``concurrency`` at a time."""
        import asyncio

        self._stub = stub
        self.few = concurrency <= 4
        workers = [asyncio.ensure_future(self._work()) for _ in range(min(concurrency, len(self.ranges)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for worker in workers:
                worker.cancel()
            raise
        if self.server_gone:
            self._take()  # reports every batch not taken yet as not sent

    def _take(self) -> tuple[int, bytes] | None:
        """The next batch to send, encoded; ``None`` when there is none (or the server is gone)."""
        while self._next < len(self.ranges):
            batch = self._next
            self._next += 1
            if self.server_gone:  # the server is gone: report the rest, send nothing more
                self._fail(batch, _not_sent(list(self.failures.values())[-1].error))
                continue
            start, stop = self.ranges[batch]
            inputs = {name: Tensor(t.data[start:stop], t.datatype) for name, t in self.tensors.items()}
            return batch, encode_request(
                self.model, inputs, self.outputs, self.version, self.parameters, heads=self.conn.request_heads
            )
        return None

    def _send(self, prepared: tuple[int, bytes]) -> Any:
        call = self._stub(prepared[1], timeout=self.seconds, metadata=self.metadata)
        if self.debug:
            self._sent[id(call)] = time.perf_counter()
        return call

    def _log(self, call: Any, error: grpc.RpcError | None, attempt: int) -> None:
        """The DEBUG record of one batch's call (only when DEBUG is on)."""
        status = "OK" if error is None else error.code().name
        log.call_done("ModelInfer", self.target, status, self._sent.pop(id(call), time.perf_counter()), attempt + 1)

    async def _work(self) -> None:
        """One call in flight at a time. With few workers, the last reply is decoded and the request
        after next encoded while the next call flies; with many, the other workers' calls fill that time."""
        import asyncio

        current = self._take()
        if current is None:
            return
        call, attempt = self._send(current), 0
        upcoming = self._take() if self.few else None
        while current is not None:
            try:
                reply, error = await call, None
            except grpc.RpcError as exc:
                reply, error = None, exc
            if self.debug:
                self._log(call, error, attempt)
            if error is not None and error.code() in self.retryable and attempt < self.retries:
                attempt += 1
                pause = min(0.1 * 2**attempt, 2.0) * (0.5 + random.random())
                log.retrying("ModelInfer", self.target, from_rpc_error(error, method="ModelInfer", **self.conn.error_context), attempt, pause)
                await asyncio.sleep(pause)
                call = self._send(current)
                continue
            if error is not None:
                code = error.code()
                self.gone_streak = self.gone_streak + 1 if code in SERVER_GONE else 0
                if self.gone_streak >= GONE_AFTER and not self.server_gone:
                    self.server_gone = True
                    log.gone(self.target, self.model, GONE_AFTER, len(self.ranges) - self._next + (upcoming is not None))
                if self.server_gone and upcoming is not None:
                    self._fail(upcoming[0], _not_sent(from_rpc_error(error, method="ModelInfer", **self.conn.error_context)))
                    upcoming = None
            finished, attempt = current, 0
            if self.few:
                current = upcoming
                if current is not None:
                    call = self._send(current)  # the next call flies while this reply is handled;
                    await asyncio.sleep(0)  # let it start sending before the decoding below
                    upcoming = self._take()
            if error is not None:
                self._fail(finished[0], from_rpc_error(error, method="ModelInfer", timeout=self.seconds, **self.conn.error_context))
            else:
                self._keep(finished[0], reply)
            if not self.few:
                current = self._take()
                if current is not None:
                    call = self._send(current)

    def _keep(self, batch: int, reply: bytes) -> None:
        start, stop = self.ranges[batch]
        try:
            result = decode_response(reply, plans=self.conn.reply_plans)
            shape = self.shape or _Shape(result, self.ranges[-1][1])  # a first batch that is wrong sets nothing
            problem = shape.problem(result, stop - start)
            if problem:
                raise TensorError(f"Rows {start}:{stop}: {problem}.", hint="The model answered this batch differently.")
            self.shape = shape
        except EasnbError as exc:  # a reply's names may quote the token
            self._fail(batch, scrub(exc, self.conn.error_context.get("token")))
            return
        self.gone_streak = 0
        for name, array in result.outputs.items():
            self.shape.arrays[name][start:stop] = array  # copied now, while other calls fly, not all at the end
        self.scored.add(batch)
        if self.bar is not None:
            self.bar.update(stop - start)

    def _fail(self, batch: int, error: EasnbError) -> None:
        start, stop = self.ranges[batch]
        self.failures[batch] = BatchFailure(start, stop, error)
        if self.bar is not None:
            self.bar.update(stop - start)
            self.bar.set_postfix(errors=len(self.failures), refresh=False)


def _not_sent(cause: EasnbError) -> EasnbError:
    return type(cause)(
        f"Not sent: the server stopped answering ({cause.message})",
        hint="Check that the server is up, then score these rows again (error.failures has their ranges).",
        code=cause.code,
        details=cause.details,
    )


def _assemble(
    frame: pd.DataFrame,
    ranges: list[tuple[int, int]],
    done: set[int],
    arrays: dict[str, np.ndarray],
    datatypes: dict[str, str],
    failures: dict[int, BatchFailure],
    errors: str,
    empty: Callable[[], pd.DataFrame],
) -> pd.DataFrame:
    """One frame of every scored batch, in the frame's order and with its index (which may repeat).

    ``empty`` makes the 0-row frame of the model's output columns, for when no batch was scored.
    """
    from .frames import result_to_frame
    from .results import InferResult

    failed = [failures[b] for b in sorted(failures)]
    if not failed:
        if done:  # every row scored: the arrays are the answer as they are
            scored = result_to_frame(InferResult("", "", "", arrays, datatypes), share=True)
        else:  # a frame of no rows
            scored = empty()
        scored.index = frame.index
        if errors == "keep":
            scored["error"] = None
        return scored
    positions = np.concatenate([np.arange(*ranges[b]) for b in sorted(done)]) if done else np.arange(0)
    if done:
        scored = result_to_frame(InferResult("", "", "", {n: a[positions] for n, a in arrays.items()}, datatypes))
    else:
        scored = empty()
    if errors == "keep":  # rows by position, so a repeated index is no problem
        full = scored.set_axis(positions, axis=0).reindex(np.arange(len(frame)))
        full.index = frame.index
        messages = np.full(len(frame), None, dtype=object)
        for failure in failed:
            messages[failure.start : failure.stop] = failure.error.message
        full["error"] = messages
        return full
    scored.index = frame.index[positions]
    raise BatchError(scored, failed, len(frame))
