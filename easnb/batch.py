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
from .inference import decode_response

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
    import pandas as pd

    if errors not in ("raise", "keep"):
        raise EasnbError(f"errors={errors!r}: use 'raise' or 'keep'.")
    if batch_size < 1 or concurrency < 1:
        raise EasnbError("batch_size and concurrency must be at least 1.")
    seconds = conn.deadline() if timeout is None else timeout
    conn.cached_model_metadata(model, version)  # fail early on an unknown model
    ranges = [(start, min(start + batch_size, len(frame))) for start in range(0, len(frame), batch_size)]
    done: queue.Queue[tuple[int, grpc.Future]] = queue.Queue()
    pending = list(range(len(ranges)))[::-1]  # batch numbers, popped from the end
    retry_at: list[tuple[float, int]] = []
    attempts = [0] * len(ranges)
    inflight: dict[int, grpc.Future] = {}
    results: dict[int, pd.DataFrame] = {}
    failures: dict[int, BatchFailure] = {}
    bar = _progress(len(frame), progress)

    def submit(batch: int) -> None:
        start, stop = ranges[batch]
        data = conn.encode_infer(model, frame.iloc[start:stop], outputs, version)
        future = conn._infer.future(data, timeout=seconds, metadata=conn.metadata)
        inflight[batch] = future
        future.add_done_callback(lambda f, b=batch: done.put((b, f)))

    def finish(batch: int, future: grpc.Future) -> None:
        start, stop = ranges[batch]
        try:
            reply = future.result()
            table = decode_response(reply).to_frame()
            if len(table) != stop - start:
                raise EasnbError(f"The model returned {len(table)} rows for a batch of {stop - start}.")
            table.index = frame.index[start:stop]
            results[batch] = table
        except grpc.RpcError as exc:
            error = from_rpc_error(exc, target=conn.endpoint.target, method="ModelInfer", token=conn._token, timeout=seconds)
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
    return _assemble(frame, results, failures, errors)


def _assemble(
    frame: pd.DataFrame, results: dict[int, pd.DataFrame], failures: dict[int, BatchFailure], errors: str
) -> pd.DataFrame:
    import pandas as pd

    ordered = [results[b] for b in sorted(results)]
    scored = pd.concat(ordered) if ordered else pd.DataFrame(index=frame.index[:0])
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
