"""The token taken out of every error a connection's public methods raise.

An error's text can hold what a server sent (a tensor's name in its metadata, a datatype, a
reply's id), and a server can put the token it was sent there. ``scrubbing`` wraps a class's
public methods so any ``EasnbError`` leaving them has every form of the connection's token
redacted (``errors.scrub``); the error is re-raised as it was, traceback and cause kept.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import EasnbError, scrub

C = TypeVar("C", bound=type)


def _token(owner: Any) -> Any:
    settings = getattr(owner, "settings", None)
    return getattr(settings, "token", None)


def scrubbed(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` (of an object with ``.settings.token``) raising its ``EasnbError``s with the token redacted."""
    if inspect.iscoroutinefunction(method):
        @functools.wraps(method)
        async def waiting(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await method(self, *args, **kwargs)
            except EasnbError as exc:
                scrub(exc, _token(self))
                raise

        return waiting

    @functools.wraps(method)
    def calling(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except EasnbError as exc:
            scrub(exc, _token(self))
            raise

    return calling


def scrubbing(*skip: str) -> Callable[[C], C]:
    """A class decorator: every public method but ``skip`` (hot paths that scrub inline) is ``scrubbed``."""
    def decorate(cls: C) -> C:
        for name, value in list(vars(cls).items()):
            if not name.startswith("_") and name not in skip and inspect.isfunction(value):
                setattr(cls, name, scrubbed(value))
        return cls

    return decorate


__all__ = ["scrubbed", "scrubbing"]
