"""Triton's statistics extension from the client: where a server says each request's time went.

``ModelStatistics`` reports, per model and since the server started, counts and cumulative
nanoseconds for successful and failed requests and for the stages of the successful ones:
queue, compute input, compute infer and compute output. Two snapshots give a window's split.

>>> before = conn.model_statistics("iris")              # doctest: +SKIP
>>> conn.infer("iris", {"features": x})                  # doctest: +SKIP
>>> conn.model_statistics("iris").since(before).per_request_ms()   # doctest: +SKIP
{'queue': 0.01, 'compute_input': 0.05, 'compute_infer': 0.2, 'compute_output': 0.03}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc

from . import _proto
from ._proto import V2_SERVICE, method_path
from .calls import quiet
from .errors import NotFoundError, UnimplementedError

if TYPE_CHECKING:
    from .link import Link

PATH = method_path(V2_SERVICE, "ModelStatistics")
#: The stages of a successful request, in the order they happen.
STAGES = ("queue", "compute_input", "compute_infer", "compute_output")
_DURATIONS = ("success", "fail", *STAGES)


@dataclass(frozen=True)
class ModelStatistics:
    """One model version's cumulative statistics: ``durations[name] = (count, nanoseconds)``.

    ``name`` is ``success``, ``fail`` or a stage of ``STAGES``; ``inference_count`` counts rows
    (batch elements), ``execution_count`` model runs.
    """

    name: str
    version: str
    inference_count: int
    execution_count: int
    durations: dict[str, tuple[int, int]] = field(default_factory=dict)
    last_inference_ms: int = 0

    def since(self, before: ModelStatistics) -> ModelStatistics:
        """The statistics of what happened between ``before`` and this snapshot."""
        return ModelStatistics(
            self.name,
            self.version,
            self.inference_count - before.inference_count,
            self.execution_count - before.execution_count,
            {
                k: (c - before.durations.get(k, (0, 0))[0], ns - before.durations.get(k, (0, 0))[1])
                for k, (c, ns) in self.durations.items()
            },
            self.last_inference_ms,
        )

    def per_request_ms(self) -> dict[str, float]:
        """Each stage's mean milliseconds per request (stages nobody went through are left out)."""
        return {s: self.durations[s][1] / self.durations[s][0] / 1e6 for s in STAGES if self.durations.get(s, (0, 0))[0] > 0}

    @property
    def success(self) -> int:
        return self.durations.get("success", (0, 0))[0]

    @property
    def fail(self) -> int:
        return self.durations.get("fail", (0, 0))[0]


def _read(message: object) -> ModelStatistics:
    stats = message.inference_stats  # type: ignore[attr-defined]
    return ModelStatistics(
        message.name,  # type: ignore[attr-defined]
        message.version,  # type: ignore[attr-defined]
        int(message.inference_count),  # type: ignore[attr-defined]
        int(message.execution_count),  # type: ignore[attr-defined]
        {k: (int(getattr(stats, k).count), int(getattr(stats, k).ns)) for k in _DURATIONS},
        int(message.last_inference),  # type: ignore[attr-defined]
    )


def model_statistics(conn: Link, model: str = "", version: str = "", timeout: float | None = None) -> list[ModelStatistics]:
    """Every matching model version's statistics (all models when ``model`` is empty); entries a
    server sends for other models or versions than those asked for are dropped.

    Raises ``UnimplementedError`` when the server does not offer Triton's statistics
    extension (KServe and MLServer do not), ``NotFoundError`` for an unknown model.
    """
    stub = conn.channel.unary_unary(
        PATH,
        request_serializer=_proto.ModelStatisticsRequest.SerializeToString,
        response_deserializer=quiet(_proto.ModelStatisticsResponse.FromString),
    )
    request = _proto.ModelStatisticsRequest(name=model, version=version)
    metadata = conn.metadata
    seconds = conn.timeout if timeout is None else timeout
    try:
        reply = conn.call("ModelStatistics", lambda s: stub(request, timeout=s, metadata=metadata), seconds)
    except UnimplementedError:
        raise UnimplementedError(
            f"{conn.endpoint.target} does not offer Triton's statistics extension (ModelStatistics).",
            code=grpc.StatusCode.UNIMPLEMENTED,
            hint="Only Triton (and easnb's demo) report where a request's time goes; the client's own timing still works.",
        ) from None
    found = [_read(m) for m in reply.model_stats]
    if model:  # what a server sends about other models (or versions) is not this one's
        found = [s for s in found if s.name == model and (not version or s.version == version)]
    if model and not found:
        raise NotFoundError(f"The server reported no statistics for model {model!r}.", code=grpc.StatusCode.NOT_FOUND)
    return found


def total(snapshots: list[ModelStatistics]) -> ModelStatistics:
    """The versions of one model summed into one (Triton reports each version apart)."""
    first = snapshots[0]
    durations: dict[str, tuple[int, int]] = {}
    for snap in snapshots:
        for k, (c, ns) in snap.durations.items():
            c0, ns0 = durations.get(k, (0, 0))
            durations[k] = (c0 + c, ns0 + ns)
    return ModelStatistics(
        first.name,
        ",".join(s.version for s in snapshots),
        sum(s.inference_count for s in snapshots),
        sum(s.execution_count for s in snapshots),
        durations,
        max(s.last_inference_ms for s in snapshots),
    )
