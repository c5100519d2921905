"""What a load test sends: a model's requests encoded once (a DataFrame's rows cycled in batches), or a
unary method's messages; ``LoadTestError`` for a sweep that cannot start.

>>> workload(conn, "iris", df, batch_size=4).requests[:2]   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._proto import V2_SERVICE, method_path
from .errors import EasnbError, LoadTestError  # noqa: F401 - LoadTestError importable from here
from .loadcheck import infer_replies, message_problem

if TYPE_CHECKING:
    from .link import Link

#: How many distinct requests a DataFrame's rows are encoded into, at most (then cycled).
RING = 256


@dataclass(frozen=True)
class Workload:
    """What a load test sends: serialized requests (cycled), their rows, and the method's path; ``check(reply)``
    says why a reply cannot be read (``""`` when it can: see ``easnb.loadcheck``)."""

    path: str
    requests: list[bytes]
    rows: list[int]
    check: Callable[[bytes], str]
    model: str = ""  # a V2 model, whose statistics can be asked for
    version: str = ""


def workload(conn: Link, target: Any, inputs: Any, batch_size: int = 1, version: str = "", **options: Any) -> Workload:
    """The requests for ``target``: a V2 model name with arrays or a DataFrame, or a unary method with its fields."""
    from .frames import is_frame

    if isinstance(target, str):
        if type(inputs) is not dict and is_frame(inputs):
            if len(inputs) == 0:
                raise LoadTestError("The DataFrame has no rows to send.")
            count = max(1, min(RING, len(inputs) // batch_size))
            chunks = [inputs.iloc[i * batch_size : (i + 1) * batch_size] for i in range(count)]
        else:
            chunks = [inputs]
        requests = [conn.encode_infer(target, chunk, version=version, **options) for chunk in chunks]
        return Workload(method_path(V2_SERVICE, "ModelInfer"), requests, [_rows(c) for c in chunks], infer_replies(), target,
                        version)
    if not hasattr(target, "request_class") or not hasattr(target, "path"):
        raise LoadTestError(
            f"Cannot load-test {target!r}: give a model name or a method such as conn.service('pkg.Service').Method.",
        )
    if target.client_streaming or target.server_streaming:
        raise LoadTestError(f"{target.path} streams; load_test sends unary calls only.", hint="Pick a unary method.")
    messages = inputs if isinstance(inputs, list) else [inputs]
    requests = [target.message(m).SerializeToString() for m in messages] or [target.message().SerializeToString()]
    return Workload(target.path, requests, [1] * len(requests), message_problem(target.response_class))


def _rows(chunk: Any) -> int:
    if hasattr(chunk, "iloc"):
        return len(chunk)
    first = next(iter(chunk.values()), None) if isinstance(chunk, dict) else None
    data = getattr(first, "data", first)
    shape = np.shape(data) if data is not None else ()
    return int(shape[0]) if shape else 1
