"""The token and the call metadata, kept where a traceback cannot show them.

A ``Token``'s repr is masked, and so is ``CallMetadata``'s, so ``%xmode Verbose``,
``pytest -l`` and ``traceback.TracebackException(capture_locals=True)`` render
``self._token`` and ``self._metadata`` without the secret.

>>> Token("s3cret")
Token(***)
>>> call_metadata(Token("s3cret"), {"x-request-id": "42"})
<call metadata: authorization (hidden), x-request-id>
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import EasnbError, TokenError

HeaderValue = str | bytes
Headers = Mapping[str, HeaderValue]

# gRPC's rule for metadata keys: lowercase letters, digits, '-', '_' and '.'.
_KEY = re.compile(r"^[0-9a-z_.-]+$")
_RESERVED = ("grpc-", ":")
_HOP = {"te", "content-type", "user-agent", "host"}


class Token:
    """A service token. ``repr`` and ``str`` never show it; ``reveal()`` does."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Token(***)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise EasnbError(
            "A token is never pickled.",
            hint="Read it again where it is needed, e.g. from EASNB_TOKEN (easnb.dask does this on the workers).",
        )


def clean_token(token: str | Token | None) -> Token | None:
    """The token without surrounding spaces or a pasted ``Bearer `` prefix; checked sendable."""
    if token is None or isinstance(token, Token):
        return token
    if not isinstance(token, str):
        raise TokenError(f"The token must be a string, not {type(token).__name__}.")
    text = token.strip()
    if text[:7].lower() == "bearer ":
        text = text[7:].strip()
    for position, char in enumerate(text):
        if not 33 <= ord(char) <= 126:
            kind = "non-ASCII character" if ord(char) > 126 else "space or control character"
            raise TokenError(f"The token has a {kind} at position {position}; a token is printable ASCII.")
    return Token(text) if text else None


def parse_token(token: str | Token | None) -> tuple[Token | None, TokenError | None]:
    """``clean_token`` that returns its error instead of raising it, with no traceback attached.

    A caller rebinds its own ``token`` variable to the result before raising the error, so no
    frame on the error's traceback holds the plain token (``%xmode Verbose`` shows locals).
    """
    try:
        return clean_token(token), None
    except TokenError as exc:
        exc.__traceback__ = None
        return None, exc


class CallMetadata(tuple):  # type: ignore[type-arg]
    """``(key, value)`` pairs as gRPC wants them; the repr names the keys and hides the token."""

    def __repr__(self) -> str:
        keys = [f"{k} (hidden)" if k == "authorization" else k for k, _ in self]
        return f"<call metadata: {', '.join(keys) or 'none'}>"

    def __add__(self, other: Any) -> CallMetadata:
        return CallMetadata(tuple(self) + tuple(other))

    def __reduce__(self) -> Any:
        raise EasnbError("Call metadata holds the token and is never pickled.")


def check_headers(headers: Headers | None) -> tuple[tuple[str, HeaderValue], ...]:
    """``headers`` as metadata pairs: keys lowercased and checked, values sendable.

    ``authorization`` is refused: the token has its own path (``token=``).
    """
    if not headers:
        return ()
    if not isinstance(headers, Mapping):
        raise EasnbError(f"headers must be a dict of name -> value, not {type(headers).__name__}.")
    pairs = []
    for key, value in headers.items():
        if not isinstance(key, str):
            raise EasnbError(f"Header name {key!r} is not a string.")
        name = key.strip().lower()
        if name == "authorization":
            raise EasnbError(
                "The 'authorization' header cannot be set through headers=.",
                hint="Pass the token as token=... (or set EASNB_TOKEN); easnb sends it as 'authorization: Bearer <token>'.",
            )
        if not _KEY.match(name) or name.startswith(_RESERVED) or name in _HOP:
            raise EasnbError(
                f"Header name {key!r} cannot be sent as gRPC metadata.",
                hint="Use lowercase letters, digits, '-', '_' and '.', not starting with 'grpc-' (e.g. 'x-request-id').",
            )
        if name.endswith("-bin"):
            if not isinstance(value, bytes):
                raise EasnbError(f"Header {name!r} ends in -bin, so its value must be bytes.")
        elif not isinstance(value, str) or not all(32 <= ord(c) <= 126 for c in value):
            raise EasnbError(
                f"Header {name!r} must be printable ASCII text.",
                hint="Binary values go in a header whose name ends in '-bin', as bytes.",
            )
        pairs.append((name, value))
    return tuple(pairs)


def call_metadata(token: Token | None, headers: Headers | None = None) -> CallMetadata:
    """The metadata of a call: ``authorization: Bearer <token>`` and the checked headers."""
    auth = (("authorization", f"Bearer {token.reveal()}"),) if token is not None else ()
    return CallMetadata(auth + check_headers(headers))
