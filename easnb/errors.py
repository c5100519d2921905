"""easnb's exceptions, and the one place that translates gRPC's.

::

    EasnbError
    ├── EndpointError          the endpoint text cannot be a gRPC target
    ├── TokenError             the token cannot be sent (spaces, non-ASCII)
    ├── AuthenticationError    UNAUTHENTICATED, PERMISSION_DENIED
    ├── UnavailableError       UNAVAILABLE: endpoint, network, VPC, server down
    ├── DeadlineError          DEADLINE_EXCEEDED
    ├── NotFoundError          NOT_FOUND: model, version or method
    ├── InvalidArgumentError   INVALID_ARGUMENT
    │   └── TensorError        a tensor easnb cannot encode or decode
    ├── MessageTooLargeError   RESOURCE_EXHAUSTED for a message over a limit
    └── ServerError            anything else the server answered, or a malformed reply

Every error has ``code`` (a ``grpc.StatusCode`` or ``None``), ``details`` (what the
server said) and ``hint`` (what to check next). None of them ever holds the token.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc

TOKEN_HINT = (
    "Check that the token is right and not expired: copy it from the service details "
    "page in the PAI-EAS console. easnb sends it as 'authorization: Bearer <token>', so "
    "pass the token alone."
)
NO_TOKEN_HINT = "No token was sent: pass token=... to connect() or set EASNB_TOKEN."
UNAVAILABLE_HINT = (
    "Check the endpoint (the console domain plus :80, without http://) and that the "
    "network reaches it. A VPC endpoint (with .vpc.) works only from inside the same VPC "
    "and region, and the security group must allow the port."
)
VPC_HINT = (
    "This is a VPC endpoint: it is reachable only from inside the service's VPC and "
    "region. From elsewhere use the public endpoint (the same name without .vpc.)."
)


class EasnbError(Exception):
    """Base of every easnb error: a message, the gRPC ``code`` and ``details``, a ``hint``."""

    default_hint = ""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        code: grpc.StatusCode | None = None,
        details: str = "",
    ) -> None:
        self.message = message
        self.hint = self.default_hint if hint is None else hint
        self.code = code
        self.details = details
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.message}\nHint: {self.hint}" if self.hint else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class EndpointError(EasnbError, ValueError):
    """The endpoint text cannot be turned into a gRPC target."""

    default_hint = (
        "A valid endpoint looks like the console address "
        "'http://name.123456.cn-hangzhou.pai-eas.aliyuncs.com/', a gRPC target "
        "'name.123456.cn-hangzhou.pai-eas.aliyuncs.com:80', 'localhost:50051' or '[::1]:50051'."
    )


class TokenError(EasnbError, ValueError):
    """The token cannot be sent as a header value."""

    default_hint = "Copy the token again from the service details page in the PAI-EAS console."


class AuthenticationError(EasnbError):
    """The server refused the token (UNAUTHENTICATED or PERMISSION_DENIED)."""

    default_hint = TOKEN_HINT


class UnavailableError(EasnbError, ConnectionError):
    """The server could not be reached (UNAVAILABLE)."""

    default_hint = UNAVAILABLE_HINT


class DeadlineError(EasnbError, TimeoutError):
    """The call took longer than its deadline (DEADLINE_EXCEEDED)."""

    default_hint = "Raise the timeout (connect(timeout=...) or timeout= on the call), or check the server's load."


class NotFoundError(EasnbError, LookupError):
    """The model, version or method does not exist on the server (NOT_FOUND)."""

    default_hint = "Check the model name and version; ModelMetadata lists what a model offers."


class InvalidArgumentError(EasnbError, ValueError):
    """The server refused the request's content (INVALID_ARGUMENT)."""

    default_hint = "Compare the inputs with the model's metadata: names, datatypes and shapes."


class TensorError(InvalidArgumentError):
    """A tensor that easnb cannot encode, or a reply tensor it cannot decode."""


class MessageTooLargeError(EasnbError):
    """A message was over a size limit (RESOURCE_EXHAUSTED)."""

    default_hint = (
        "easnb sets no limit of its own, so the limit is the server's: send smaller "
        "batches, or raise the server's maximum message size."
    )


class ServerError(EasnbError):
    """The server failed the call, or sent a reply easnb cannot read."""

    default_hint = "This is on the server's side: its logs say more."


_BY_CODE: dict[grpc.StatusCode, type[EasnbError]] = {
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
    grpc.StatusCode.PERMISSION_DENIED: AuthenticationError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: MessageTooLargeError,
}


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``."""
    return text.replace(secret, "***") if secret else text


def from_rpc_error(
    exc: grpc.RpcError,
    *,
    target: str,
    method: str,
    token: str | None = None,
    timeout: float | None = None,
    is_vpc: bool = False,
) -> EasnbError:
    """The most specific ``EasnbError`` for a failed call; the token is redacted."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = redact((exc.details() if hasattr(exc, "details") else "") or "", token)
    cls = _BY_CODE.get(code, ServerError)
    hint = None
    if cls is AuthenticationError and not token:
        hint = NO_TOKEN_HINT
    elif cls is UnavailableError and is_vpc:
        hint = f"{VPC_HINT} {UNAVAILABLE_HINT}"
    elif cls is DeadlineError and timeout is not None:
        hint = f"The call did not finish within {timeout:g} s. {DeadlineError.default_hint}"
    elif code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" not in details:
        hint = "The server is overloaded or a quota was hit: retry later or send fewer requests at once."
    name = code.name if code is not None else "UNKNOWN"
    message = f"{method} on {target} failed: {name}: {details or 'no details'}"
    return cls(message, hint=hint, code=code, details=details)


@contextlib.contextmanager
def translate(
    *,
    target: str,
    method: str,
    token: str | None = None,
    timeout: float | None = None,
    is_vpc: bool = False,
) -> Iterator[None]:
    """Raise the matching ``EasnbError`` for any ``grpc.RpcError`` inside the block."""
    try:
        yield
    except grpc.RpcError as exc:
        raise from_rpc_error(
            exc, target=target, method=method, token=token, timeout=timeout, is_vpc=is_vpc
        ) from None
