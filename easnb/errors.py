"""easnb's exceptions (``easnb.rpc_errors`` is the one place that translates gRPC's into them).

::

    EasnbError
    ├── EndpointError          the endpoint text cannot be a gRPC target
    ├── TokenError             the token cannot be sent (spaces, non-ASCII)
    ├── AuthenticationError    UNAUTHENTICATED, PERMISSION_DENIED
    ├── UnavailableError       UNAVAILABLE: endpoint, network, VPC, server down
    ├── DeadlineError          DEADLINE_EXCEEDED
    ├── NotFoundError          NOT_FOUND: model, version or method
    ├── InvalidArgumentError   INVALID_ARGUMENT
    │   ├── TensorError        a tensor easnb cannot encode or decode
    │   │   └── FrameInput     a DataFrame as one input's value, where no model metadata is at hand
    │   └── ArgumentError      an argument of the wrong type or value (also a TypeError)
    ├── RequestError           a request message that cannot be built (names the field); nothing sent
    ├── UnimplementedError     UNIMPLEMENTED: the server does not offer the method
    ├── ResourceExhaustedError RESOURCE_EXHAUSTED: a concurrency limit, a quota, oversized headers
    │   └── MessageTooLargeError   a message over a size limit (the client's or the server's)
    ├── ServerError            anything else the server answered, or a malformed reply
    │   └── StreamError        a streamed request failed inside the stream (Triton's error_message)
    ├── ReflectionError        a server's reflection answer that cannot be used (refused before protobuf sees it)
    ├── ClosedError            a connection used (or entered again) after close()
    ├── BatchError             infer_frame: some batches failed (``partial``, ``failures``)
    ├── LoadTestError          a load test that cannot start as asked
    ├── UsageError             command-line arguments that do not fit together (exit status 2)
    ├── ConfigError            an EAS service configuration that EAS would refuse
    └── ControlPlaneError      the EAS control plane refused a request
        ├── CredentialsError       no Alibaba Cloud credentials found
        ├── NoPermissionError      the credentials may not do this
        ├── NameTakenError         a service with that name exists
        ├── NoSuchServiceError     no service with that name
        ├── QuotaError             a quota or resource limit
        └── RegionError            a wrong or unreachable region

Every error has ``code`` (a ``grpc.StatusCode`` or ``None``), ``details`` (what the
server said), ``hint`` (what to check next) and ``status_details`` (the server's
``google.rpc.Status`` details, if it sent any). None of them ever holds the token,
nor the ``grpc.RpcError`` it came from (``__context__`` is empty), and every one
survives pickling with its fields.
"""

from __future__ import annotations

from typing import Any

import grpc

from .redaction import redact
from .unreachable import UNAVAILABLE_HINT

TOKEN_HINT = (
    "Check that the token is right and not expired: copy it from the service details "
    "page in the PAI-EAS console. easnb sends it as 'authorization: Bearer <token>', so "
    "pass the token alone."
)
NO_TOKEN_HINT = "No token was sent: pass token=... to connect() or set EASNB_TOKEN."


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
        self.status_details: tuple[Any, ...] = ()
        super().__init__(message)

    def __reduce__(self) -> Any:
        # Rebuild from the fields, whatever the subclass's __init__ takes (BatchError's does not
        # take a message), so errors cross process pools and Dask workers intact.
        return (_restore, (type(self), self.__dict__.copy()))

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


class FrameInput(TensorError):
    """A DataFrame given as one input's value: matching its columns needs the model's metadata.

    ``Connection.infer`` and ``easnb.aio``'s catch it and match the columns by name; elsewhere it
    says what to pass instead.
    """


class ArgumentError(InvalidArgumentError, TypeError):
    """An argument of the wrong type or value, refused before anything was built or sent.

    ``argument`` names it; it is both a ``TypeError`` and (as every ``InvalidArgumentError``) a ``ValueError``.
    """

    default_hint = ""

    def __init__(self, message: str, *, argument: str = "", **fields: Any) -> None:
        super().__init__(message, **fields)
        self.argument = argument


class UnimplementedError(EasnbError):
    """The server does not offer the method that was called (UNIMPLEMENTED)."""

    default_hint = (
        "The server does not offer this method. If it is not a V2 inference server, call its own "
        "service: conn.service('its.Service') (with server reflection) or conn.service('file.proto', 'its.Service')."
    )


class ResourceExhaustedError(EasnbError):
    """The server refused the call for lack of a resource (RESOURCE_EXHAUSTED)."""

    default_hint = "The server is overloaded or a quota was hit: retry later or send fewer requests at once."


class MessageTooLargeError(ResourceExhaustedError):
    """A message was over a size limit (RESOURCE_EXHAUSTED)."""

    default_hint = (
        "easnb sets no limit of its own, so the limit is the server's: send smaller "
        "batches, or raise the server's maximum message size."
    )


class RequestError(EasnbError, ValueError):
    """A request that cannot be built from what was given: a wrong field name, type or JSON.

    ``field`` names the field at fault (``"inner.values[2]"``) when one is; nothing was sent.
    """

    def __init__(self, message: str, *, field: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.field = field


class ServerError(EasnbError):
    """The server failed the call, or sent a reply easnb cannot read."""

    default_hint = "This is on the server's side: its logs say more."


class StreamError(ServerError):
    """A streamed request failed inside a stream that itself stayed up (Triton's ``error_message``).

    ``request_id`` is the failed request's id, ``final`` whether the server marked it ended, and
    ``received`` the responses (``InferResult``) that arrived before the error. Errors that end a
    stream with a gRPC status (MLServer, Triton's ``triton_grpc_error`` header, deadlines) keep their
    own class and carry ``received`` and ``request_id`` too.
    """

    default_hint = "The model failed while answering: the server's logs say more; what arrived before is in error.received."

    def __init__(self, message: str, *, request_id: str = "", final: bool = True, received: tuple[Any, ...] = (), **kw: Any) -> None:
        super().__init__(message, **kw)
        self.request_id, self.final, self.received = request_id, final, received


class ReflectionError(EasnbError):
    """A server's reflection answer easnb refuses: malformed, cyclic, too deep or large, or missing a file."""

    default_hint = (
        "The server's reflection cannot describe this service as it is. Call it with its .proto file "
        "instead: conn.service('file.proto', 'package.Service'), or easnb call --proto FILE."
    )



class ClosedError(EasnbError, RuntimeError):
    """A connection used, or entered with ``with``, after ``close()``: a closed connection stays closed."""

    default_hint = "Open a new one: easnb.connect(...) (or easnb.aio.connect(...)); conn.settings makes one just like it."


class BatchError(EasnbError):
    """Some batches of ``infer_frame`` failed. ``partial`` (a DataFrame) holds every row that was
    scored; ``failures`` (``easnb.batch.BatchFailure``: row range and error) the rest."""

    def __init__(self, partial: Any, failures: list[Any], total: int) -> None:
        self.partial = partial
        self.failures = failures
        failed = sum(f.stop - f.start for f in failures)
        first = failures[0]
        super().__init__(
            f"{failed} of {total} rows were not scored ({len(failures)} batches failed; first, rows "
            f"{first.start}:{first.stop}: {first.error.message})",
            hint="error.partial has the rows that were scored and error.failures the row ranges that were not; "
            "infer_frame(..., errors='keep') returns one frame with an 'error' column instead.",
        )


class LoadTestError(EasnbError, ValueError):
    """A load test that cannot start as asked (no levels, a streaming method, bad inputs)."""


class UsageError(RequestError):
    """Command-line arguments that do not fit together (the command exits 2, as for every usage error)."""


class ConfigError(EasnbError, ValueError):
    """A service configuration EAS would refuse, or that would not work once deployed."""

    default_hint = "Fix the fields named above; ServiceConfig.validate() lists every problem."


class ControlPlaneError(EasnbError):
    """The EAS control plane refused a request; ``code`` is its error code (e.g. ``Forbidden``)."""

    default_hint = "The control plane's message above says why; the PAI-EAS console shows the same service."


class CredentialsError(ControlPlaneError):
    """No Alibaba Cloud credentials were found."""

    default_hint = (
        "Set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET in the environment (or write "
        "~/.alibabacloud/credentials.ini), then restart the kernel. Never put keys in a notebook cell."
    )


class NoPermissionError(ControlPlaneError):
    """The credentials may not do this (403, Forbidden, NoPermission)."""

    default_hint = "Give the RAM user the AliyunPAIEASFullAccess policy (or one that allows this EAS action)."


class NameTakenError(ControlPlaneError):
    """A service with that name already exists in the region."""

    default_hint = "Pick another name, update the existing service with update(config), or delete it first."


class NoSuchServiceError(ControlPlaneError, LookupError):
    """No service with that name in the region."""

    default_hint = "Check the name and the region; list_services() shows the services there."


class QuotaError(ControlPlaneError):
    """A quota or a resource limit was hit."""

    default_hint = "Ask for fewer instances or a smaller instance type, or raise the quota in the console."


class RegionError(ControlPlaneError):
    """The region (or the control-plane endpoint) is wrong or unreachable."""

    default_hint = "Use a region EAS serves, such as cn-hangzhou or cn-shanghai; the endpoint is pai-eas.<region>.aliyuncs.com."


def _restore(cls: type[EasnbError], state: dict[str, Any]) -> EasnbError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


def scrub(error: EasnbError, token: Any) -> EasnbError:
    """``error`` with every form of ``token`` taken out of its texts, in place; returns it.

    For errors built from what a server sent (a tensor's name, a reply's id or message), which
    may quote the token it was sent: every string field (message, hint, details, request id, ...)
    and ``args``.
    """
    if token is None:
        return error
    for key, text in list(vars(error).items()):
        if isinstance(text, str):
            setattr(error, key, redact(text, token))
    error.args = tuple(redact(a, token) if isinstance(a, str) else a for a in error.args)
    return error
