"""The one place that translates gRPC's errors: a failed call becomes the most specific ``EasnbError``
(the class by status code, then by what the details say), with a hint by cause and the token redacted.

>>> except grpc.RpcError as exc:                                            # doctest: +SKIP
...     raise from_rpc_error(exc, method="ModelInfer", **conn.error_context)  # an UnavailableError, ...
"""

from __future__ import annotations

import re
from typing import Any

import grpc

from .errors import (
    AuthenticationError, DeadlineError, EasnbError, InvalidArgumentError, MessageTooLargeError, NO_TOKEN_HINT,
    NotFoundError, ResourceExhaustedError, ServerError, UnavailableError, UnimplementedError,
)
from .redaction import holds, redact
from .unreachable import fork_hint, proxy_note, unavailable_hint


_BY_CODE: dict[grpc.StatusCode, type[EasnbError]] = {
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
    grpc.StatusCode.PERMISSION_DENIED: AuthenticationError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
}

_LIMIT = re.compile(r"(Sent|Received) message larger than max \((\d+) vs\. (\d+)\)")


def status_details(exc: Any) -> tuple[Any, ...]:
    """The ``google.rpc.Status`` details a server attached (``grpc-status-details-bin``), as ``Any`` messages."""
    try:
        trailers = exc.trailing_metadata() or ()
    except Exception:
        return ()
    for key, value in trailers:
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            from ._proto import rpc_status_details

            return rpc_status_details(value)
    return ()


def _describe_details(details: tuple[Any, ...], dropped: int = 0) -> str:
    names = [d.type_url.rsplit("/", 1)[-1] for d in details]
    seen = f" (the server attached {', '.join(names)}: see error.status_details)" if names else ""
    return seen + (f" ({dropped} attached detail(s) held the token and were dropped)" if dropped else "")


def _hint(cls: type[EasnbError], details: str, context: dict[str, Any]) -> tuple[type[EasnbError], str | None]:
    """The most specific class and hint for a failure, from its class (by code), details and where it happened."""
    if cls is AuthenticationError and "behind the easnb gateway refused" in details:
        return cls, (
            "The gateway accepted your token; the service behind it refused the gateway's own call. "
            "Give the gateway the backend's token: --backend-token-file FILE or EASNB_BACKEND_TOKEN."
        )
    if cls is AuthenticationError and not context.get("token"):
        return cls, NO_TOKEN_HINT
    if cls is UnavailableError:
        hint = unavailable_hint(details, context)  # by cause: proxy, refused, DNS, TLS, timeout, ...
        if hint is not None:
            return cls, hint
    if cls is DeadlineError and "in a forked process" in details:  # see easnb.fork
        return cls, fork_hint()
    if cls is DeadlineError and context.get("timeout") is not None:
        hint = f"The call did not finish within {context['timeout']:g} s. {DeadlineError.default_hint}"
        return cls, hint + proxy_note(context)
    if cls is ResourceExhaustedError:
        limit = _LIMIT.search(details)
        if limit:
            mine = context.get("max_message_bytes", -1)
            if mine is not None and mine >= 0 and int(limit.group(3)) == mine:
                return MessageTooLargeError, (
                    f"The limit is this client's own max_message_bytes={mine}: raise it in "
                    "easnb.connect(..., max_message_bytes=...), or send smaller batches."
                )
            return MessageTooLargeError, None
        if "metadata" in details.lower():
            return cls, "The call's headers are larger than the server accepts (often 8-16 KiB): send fewer or shorter headers."
        if "concurrent" in details.lower():
            return cls, "The server is at its limit of calls in flight: send fewer at once (lower concurrency) or retry later."
    if cls is UnimplementedError and "decoupled" in details:
        return cls, (
            "This model is decoupled: it answers only through the stream. "
            "Use conn.stream(model, inputs), or conn.generate(model, prompt) for a text generator."
        )
    if cls is UnimplementedError:
        offered = context.get("offered")
        if offered:
            return cls, f"The server does not offer {context['method']}; it offers {', '.join(offered)}."
    return cls, None


def error_context(endpoint: Any, token: Any, max_message_bytes: int, settings: Any = None) -> dict[str, Any]:
    """Where a connection's calls happen, for ``from_rpc_error``: its target, TLS or not, VPC or not, token,
    limit, and the HTTP proxy gRPC puts in between (read from the environment now, as gRPC does for the
    channel made with the same ``settings``)."""
    from .proxy import proxy_for

    return {
        "target": endpoint.target,
        "token": token,
        "is_vpc": endpoint.is_vpc,
        "tls": endpoint.tls,
        "max_message_bytes": max_message_bytes,
        "proxy": proxy_for(endpoint.target, settings),
    }


def from_rpc_error(exc: grpc.RpcError, *, method: str, **context: Any) -> EasnbError:
    """The most specific ``EasnbError`` for a failed call, the token redacted.

    ``context`` says where it happened: ``target``, ``token`` (a ``Token``), ``timeout``,
    ``is_vpc``, ``tls``, ``max_message_bytes``, and ``offered`` (the methods known to exist).
    """
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    token = context.get("token")
    details = redact((exc.details() if hasattr(exc, "details") else "") or "", token)
    cls, hint = _hint(_BY_CODE.get(code, ServerError), details, {**context, "method": method})
    attached = status_details(exc)
    extra = tuple(d for d in attached if not holds(d.SerializeToString(), token))  # a message cannot be redacted in place
    name = code.name if code is not None else "UNKNOWN"
    described = _describe_details(extra, len(attached) - len(extra))
    message = redact(f"{method} on {context.get('target', '?')} failed: {name}: {details or 'no details'}{described}", token)
    error = cls(message, hint=hint, code=code, details=details)
    error.status_details = extra
    return error
