"""Which models a server has: Triton's and MLServer's repository index.

Triton answers ``inference.GRPCInferenceService/RepositoryIndex``, MLServer
``inference.model_repository.ModelRepositoryService/RepositoryIndex``; both carry the
same messages, kept in easnb's private pool. KServe's V2 API has no index.

>>> conn.models()      # doctest: +SKIP
[ModelIndex(name='iris', version='1', state='READY', reason='')]
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from . import _proto
from ._proto import MODEL_REPOSITORY_SERVICE, V2_SERVICE, method_path
from .calls import Plan, Unary
from .errors import UnimplementedError


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


def index_plan(target: str, ready: bool = False) -> Plan[list[ModelIndex]]:
    """The server's models, from whichever index it offers; ``UnimplementedError`` when it has none."""
    request = _proto.RepositoryIndexRequest(ready=ready)
    for path in PATHS:
        try:
            reply = yield Unary(path, request, _proto.RepositoryIndexResponse)
        except UnimplementedError:
            continue
        return [ModelIndex(m.name, m.version, _state(m.state), m.reason) for m in reply.models]
    raise UnimplementedError(
        f"{target} offers no model repository index (Triton's or MLServer's).",
        code=grpc.StatusCode.UNIMPLEMENTED,
        hint="Ask for a model by name: conn.model_metadata('name'). KServe's V2 API has no list of models.",
    )


def known_plan(target: str, used: list[str]) -> Plan[list[str]]:
    """Model names to offer: the repository index's, else ``used`` (the names used on the connection)."""
    try:
        index = yield from index_plan(target)
    except UnimplementedError:
        return used
    return sorted({m.name for m in index})
