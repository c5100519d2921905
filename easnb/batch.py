"""Score a whole DataFrame: batches, several in flight on one channel, retries, progress.

>>> scores = conn.infer_frame("iris", df, batch_size=1000, concurrency=8)   # doctest: +SKIP
"""

from __future__ import annotations

import queue
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from .errors import EasnbError, from_rpc_error
from .inference import decode_response, encode_request
from .tensors import Tensor

if TYPE_CHECKING:
    import pandas as pd

    from .connection import Connection

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}


@dataclass(frozen=True)
class BatchFailure:
    """Rows ``start:stop`` (positions in the frame) that could not be scored, and why."""

    start: int
    stop: int
    error: EasnbError


class BatchError(EasnbError):
    """Some batches failed. ``partial`` holds every row that was scored; ``failures`` the rest."""

    def __init__(self, partial: pd.DataFrame, failures: list[BatchFailure], total: int) -> None:
        self.partial = partial
        self.failures = failures
        failed = sum(f.stop - f.start for f in failures)
        first = failures[0]
        super().__init__(
            f"{failed} of {total} rows were not scored ({len(failures)} batches failed; first, rows "
            f"{first.start}:{first.stop}: {first.error.message})",
            hint="error.partial has the rows that were scored and error.failures the row ranges that were not; "
            "infer_frame(..., errors='keep') returns one frame with an 'error' column instead.",
        )


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="rows", desc="scoring", leave=True)


def infer_frame(
    conn: Connection,
    model: str,
    frame: pd.DataFrame,
    batch_size: int = 1024,
    concurrency: int = 8,
    outputs: list[str] | None = None,
    retries: int = 2,
    progress: bool = True,
    errors: str = "raise",
    version: str = "",
    timeout: float | None = None,
) -> pd.DataFrame:
    """Score ``frame`` in batches; the result is aligned with ``frame.index`` (see ``Connection.infer_frame``)."""

    if errors not in ("raise", "keep"):
        raise EasnbError(f"errors={errors!r}: use 'raise' or 'keep'.")
    if batch_size < 1 or concurrency < 1:
        raise EasnbError("batch_size and concurrency must be at least 1.")
    from .frames import frame_to_inputs

    seconds = conn.deadline() if timeout is None else timeout
    # columns are matched once; each batch is then a slice of the same arrays
    columns = frame_to_inputs(frame, conn.cached_model_metadata(model, version))
    ranges = [(start, min(start + batch_size, len(frame))) for start in range(0, len(frame), batch_size)]
    done: queue.Queue[tuple[int, grpc.Future]] = queue.Queue()
    pending = list(range(len(ranges)))[::-1]  # batch numbers, popped from the end
    retry_at: list[tuple[float, int]] = []
    attempts = [0] * len(ranges)
    inflight: dict[int, grpc.Future] = {}
    results: dict[int, dict[str, Any]] = {}
    datatypes: dict[str, str] = {}
    failures: dict[int, BatchFailure] = {}
    bar = _progress(len(frame), progress)

    def submit(batch: int) -> None:
        start, stop = ranges[batch]
        batch_inputs = {name: Tensor(t.data[start:stop], t.datatype) for name, t in columns.items()}
        data = encode_request(model, batch_inputs, outputs, version)
        future = conn._infer.future(data, timeout=seconds, metadata=conn.metadata)
        inflight[batch] = future
        future.add_done_callback(lambda f, b=batch: done.put((b, f)))

    def finish(batch: int, future: grpc.Future) -> None:
        start, stop = ranges[batch]
        try:
            result = decode_response(future.result())
            wrong = {n: a.shape[:1] for n, a in result.items() if a.shape[:1] != (stop - start,)}
            if wrong:
                raise EasnbError(f"The model returned {wrong} rows for a batch of {stop - start}.")
            results[batch] = dict(result.outputs)
            datatypes.update(result.datatypes)
        except grpc.RpcError as exc:
            error = from_rpc_error(exc, method="ModelInfer", timeout=seconds, **conn.error_context)
            if exc.code() in RETRYABLE and attempts[batch] < retries:
                attempts[batch] += 1
                backoff = min(0.1 * 2 ** attempts[batch], 2.0) * (0.5 + random.random())
                retry_at.append((time.monotonic() + backoff, batch))
                return
            failures[batch] = BatchFailure(start, stop, error)
        except EasnbError as exc:
            failures[batch] = BatchFailure(start, stop, exc)
        if bar is not None:
            bar.update(stop - start)
            if failures:
                bar.set_postfix(errors=len(failures), refresh=False)

    try:
        while pending or retry_at or inflight:
            now = time.monotonic()
            for item in [r for r in retry_at if r[0] <= now]:
                retry_at.remove(item)
                pending.append(item[1])
            while pending and len(inflight) < concurrency:
                submit(pending.pop())
            try:
                batch, future = done.get(timeout=0.05)
            except queue.Empty:
                continue
            del inflight[batch]
            finish(batch, future)
    except BaseException:
        for future in inflight.values():  # Ctrl-C, or an input that cannot be encoded
            future.cancel()
        raise
    finally:
        if bar is not None:
            bar.close()
    return _assemble(frame, ranges, results, datatypes, failures, errors)


def _assemble(
    frame: pd.DataFrame,
    ranges: list[tuple[int, int]],
    results: dict[int, dict[str, Any]],
    datatypes: dict[str, str],
    failures: dict[int, BatchFailure],
    errors: str,
) -> pd.DataFrame:
    """One frame of every scored batch, in the frame's order and with its index."""
    import numpy as np

    from .frames import result_to_frame
    from .results import InferResult

    ordered = sorted(results)
    outputs = {name: np.concatenate([results[b][name] for b in ordered]) for name in datatypes} if ordered else {}
    scored = result_to_frame(InferResult("", "", "", outputs, datatypes)) if ordered else frame.iloc[:0, :0].copy()
    positions = np.concatenate([np.arange(*ranges[b]) for b in ordered]) if ordered else np.arange(0)
    scored.index = frame.index[positions]
    if not failures:
        return scored
    failed = [failures[b] for b in sorted(failures)]
    if errors == "keep":
        full = scored.reindex(frame.index)
        full["error"] = None
        for failure in failed:
            full.iloc[failure.start : failure.stop, full.columns.get_loc("error")] = failure.error.message
        return full
    raise BatchError(scored, failed, len(frame))
