"""Which models a server has: Triton's and MLServer's repository index.

Triton answers ``inference.GRPCInferenceService/RepositoryIndex``, MLServer
``inference.model_repository.ModelRepositoryService/RepositoryIndex``; both carry the
same messages, kept in easnb's private pool. KServe's V2 API has no index.

>>> conn.models()      # doctest: +SKIP
[ModelIndex(name='iris', version='1', state='READY', reason='')]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from . import _proto
from ._proto import MODEL_REPOSITORY_SERVICE, V2_SERVICE, method_path
from .errors import UnimplementedError

if TYPE_CHECKING:
    from .connection import Connection

PATHS = (method_path(V2_SERVICE, "RepositoryIndex"), method_path(MODEL_REPOSITORY_SERVICE, "RepositoryIndex"))


@dataclass(frozen=True)
class ModelIndex:
    """One model in a repository: its name, version, state (``READY``, ``UNAVAILABLE``, ...) and why."""

    name: str
    version: str = ""
    state: str = ""
    reason: str = ""


def _state(text: str) -> str:
    # MLServer writes its Python enum, "State.READY"; Triton writes "READY"
    return text.rpartition(".")[2] if text.startswith("State.") else text


def repository_index(conn: Connection, ready: bool = False) -> list[ModelIndex]:
    """The server's models, from whichever index it offers; ``UnimplementedError`` when it has none."""
    request = _proto.RepositoryIndexRequest(ready=ready)
    metadata = conn.metadata
    for path in PATHS:
        stub = conn.channel.unary_unary(
            path,
            request_serializer=_proto.RepositoryIndexRequest.SerializeToString,
            response_deserializer=_proto.RepositoryIndexResponse.FromString,
        )
        try:
            reply = conn.call(path, lambda s: stub(request, timeout=s, metadata=metadata), retries=conn.retries)
        except UnimplementedError:
            continue
        return [ModelIndex(m.name, m.version, _state(m.state), m.reason) for m in reply.models]
    raise UnimplementedError(
        f"{conn.endpoint.target} offers no model repository index (Triton's or MLServer's).",
        code=grpc.StatusCode.UNIMPLEMENTED,
        hint="Ask for a model by name: conn.model_metadata('name'). KServe's V2 API has no list of models.",
    )
