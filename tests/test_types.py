"""Public methods say what they return (issue 24, item 8): no public method or property of
``Connection`` or ``AsyncConnection`` is annotated bare ``Any`` or not at all, except the plan
and stub seams listed below. mypy itself runs in CI (``.ci/run``) over the whole package."""

from __future__ import annotations

import inspect

import pytest

from easnb import Connection
from easnb.aio import AsyncConnection

pytestmark = pytest.mark.core

#: Seams that hand back whatever reply message the called method has (protobuf ships no type hints).
ANY_ALLOWED = {
    "unary": "a Unary step's reply message, of the step's reply class",
    "call_stub": "any method's reply message",
    "open_stub": "any server-streaming method's call",
}

#: What the calls named in the issue, and the feature calls, return on each connection.
EXPECTED = {
    Connection: {
        "service": "ServiceClient", "discover": "Discovery", "reflection": "Reflection", "models": "list[ModelIndex]",
        "stream": "CallStream", "open_stream": "OpenStream", "generate": "Generation", "infer_frame": "pd.DataFrame",
        "model_statistics": "list[ModelStatistics]", "load_test": "LoadReport", "background": "BackgroundLoop",
    },
    AsyncConnection: {
        "service": "ServiceClient", "discover": "Discovery", "reflection": "Reflection", "models": "list[ModelIndex]",
        "stream": "AsyncStream", "generate": "AsyncGeneration", "infer_frame": "pd.DataFrame",
    },
}


def public_returns(cls: type) -> dict[str, object]:
    """Each public method's and property's return annotation (as written: a string), None when missing."""
    found: dict[str, object] = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("_"):
            continue
        function = member.fget if isinstance(member, property) else member
        if callable(function):
            found[name] = getattr(function, "__annotations__", {}).get("return")
    return found


@pytest.mark.parametrize("cls", [Connection, AsyncConnection], ids=lambda c: c.__name__)
def test_no_public_method_returns_any(cls: type) -> None:
    vague = {name: ann for name, ann in public_returns(cls).items() if (ann is None or ann == "Any") and name not in ANY_ALLOWED}
    assert vague == {}


@pytest.mark.parametrize("cls", [Connection, AsyncConnection], ids=lambda c: c.__name__)
def test_the_named_calls_return_their_types(cls: type) -> None:
    returns = public_returns(cls)
    assert {name: returns.get(name) for name in EXPECTED[cls]} == EXPECTED[cls]


def test_the_allowed_seams_exist() -> None:
    """An allowance outliving its method would hide a new vague one of the same name."""
    names = set(public_returns(Connection)) | set(public_returns(AsyncConnection))
    assert set(ANY_ALLOWED) <= names
