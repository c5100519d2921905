"""What a connection is besides how it sends: ``BaseConnection``, shared by ``Connection`` and
``AsyncConnection`` (as httpx's ``BaseClient`` holds everything but I/O).

It keeps the frozen ``Settings`` and offers them by name, the caches every call shares (model
metadata, the codec's request heads and reply layouts, the streaming flavour), the call metadata,
deadlines, the closed state with its clear error, and a repr that never shows the token. The two
executors add only their channel and the calls that send.
"""

from __future__ import annotations

import os
from typing import Any

from .calls import DEFAULT
from .channel import Keepalive, refuse_pickle
from .credentials import CallMetadata, HeaderValue, Headers, Token, parse_token
from .endpoint import Endpoint
from .errors import ClosedError, EndpointError
from .metadata import ModelMetadata
from .reply_plans import ReplyPlan
from .settings import Settings, settings_of


def connect_settings(
    kind: str, endpoint: str | Endpoint | Settings | None, token: str | Token | None, timeout: float | None, options: dict[str, Any]
) -> Settings:
    """The settings ``connect()`` (sync or ``easnb.aio``) opens a ``kind`` with: another connection's
    ``Settings`` as they are, else made from the arguments, ``endpoint`` and ``token`` read from
    ``EASNB_ENDPOINT`` / ``EASNB_TOKEN`` when not given. Raises ``EndpointError`` when there is no
    endpoint, ``TokenError`` for a token that cannot be sent, ``ArgumentError`` for a bad option."""
    if not isinstance(endpoint, Settings):
        if endpoint is None:
            endpoint = os.environ.get("EASNB_ENDPOINT")
            if not endpoint:
                raise EndpointError(
                    "No endpoint was given and EASNB_ENDPOINT is not set.",
                    hint="Pass connect('host:port', token=...) or set EASNB_ENDPOINT; "
                    "for a local try, start the demo: python -m easnb demo.",
                )
        token, problem = parse_token(os.environ.get("EASNB_TOKEN") if token is None else token)
        if problem is not None:  # the plain text left this frame above, before anything can fail
            raise problem
    return settings_of(kind, endpoint, token, timeout, options)


class BaseConnection:
    """Settings, shared caches and lifecycle state of a connection; no I/O."""

    #: how the class is named in messages, and the call that opens another one like it
    _kind = "Connection"
    _opener = "easnb.connect"

    _closed = True  # until __init__ has opened the channel: repr and close work on a half-built one
    _replaced_by: str | None = None
    settings: Settings

    def _start(self, settings: Settings) -> None:
        """Keep ``settings`` and make the state every call shares (each ``__init__`` calls it first)."""
        #: everything this connection was made with (frozen; the token masked in its repr)
        self.settings = settings
        # where calls happen, for errors: the token is a Token, whose repr is masked
        self.error_context = settings.error_context()
        self._model_cache: dict[tuple[str, str], ModelMetadata] = {}
        self.request_heads: dict[Any, bytes] = {}  # serialized request heads, per model and input layout
        self.reply_plans: dict[int, ReplyPlan | None] = {}  # small replies' layouts, by length
        self.stream_plans: dict[str, tuple[Any, ...]] = {}  # streamed replies' layouts, by model (easnb.stream_plans)
        self.stream_flavour: str | None = None  # the server's streaming flavour (easnb.streaming asks once)

    # -- the settings, by name ------------------------------------------------------------

    @property
    def endpoint(self) -> Endpoint:
        return self.settings.endpoint

    @property
    def timeout(self) -> float | None:
        return self.settings.timeout

    @property
    def retries(self) -> int:
        return self.settings.retries

    @property
    def headers(self) -> dict[str, HeaderValue]:
        return dict(self.settings.headers)

    @property
    def keepalive(self) -> Keepalive:
        return self.settings.keepalive

    @property
    def has_token(self) -> bool:
        """Whether calls carry a token (the token itself is never shown)."""
        return self.settings.token is not None

    @property
    def metadata(self) -> CallMetadata:
        """The call metadata: the token and the connection's headers (its repr hides the token)."""
        return self.settings.metadata

    def metadata_for(self, headers: Headers | None = None) -> CallMetadata:
        """The metadata of one call: the connection's, with that call's ``headers`` on top."""
        return self.settings.metadata_with(headers)

    def deadline(self, timeout: float | None = DEFAULT) -> float | None:
        """The timeout of a call in seconds: its own, or the connection's for ``DEFAULT``."""
        return self.settings.timeout if timeout is DEFAULT else timeout

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def check_open(self) -> None:
        """Raise ``ClosedError`` when this connection is closed (or a widget replaced it)."""
        if self._closed:
            if self._replaced_by:
                raise ClosedError(
                    "This connection was closed because the widget connected again.",
                    hint=f"Use {self._replaced_by}, which is always the widget's current connection.",
                )
            raise ClosedError("This connection is closed.", hint=f"Open a new one: {self._opener}(conn.settings) makes one just like it.")

    def _mark_closed(self, replaced_by: str | None) -> bool:
        """Mark the connection closed; whether it was open (``close()`` then releases what it holds)."""
        if self._closed:
            return False
        self._closed = True
        self._replaced_by = replaced_by
        return True

    def __reduce__(self) -> Any:
        raise refuse_pickle(f"{'An' if self._kind[0] in 'AEIOU' else 'A'} {self._kind}")

    def __repr__(self) -> str:
        settings = self.__dict__.get("settings")
        if settings is None:
            return f"<{self._kind} (not opened)>"
        security = "TLS" if settings.endpoint.tls else "plaintext"
        token = "token set" if settings.token is not None else "no token"
        state = ", closed" if self._closed else ""
        return f"<{self._kind} {settings.endpoint.target} {security}, {token}, timeout {settings.timeout}s{state}>"
