import grpc
import pytest

from easnb import errors
from easnb.errors import from_rpc_error


class Fake(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "d") -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(
    ("code", "cls", "hint_words"),
    [
        (grpc.StatusCode.UNAUTHENTICATED, errors.AuthenticationError, "Bearer"),
        (grpc.StatusCode.PERMISSION_DENIED, errors.AuthenticationError, "token"),
        (grpc.StatusCode.UNAVAILABLE, errors.UnavailableError, "security group"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineError, "timeout"),
        (grpc.StatusCode.NOT_FOUND, errors.NotFoundError, "model name"),
        (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgumentError, "metadata"),
        (grpc.StatusCode.INTERNAL, errors.ServerError, "server"),
        (grpc.StatusCode.UNIMPLEMENTED, errors.ServerError, "server"),
        (grpc.StatusCode.UNKNOWN, errors.ServerError, "server"),
    ],
)
def test_each_code_maps_to_a_typed_error_with_hint(code, cls, hint_words) -> None:  # type: ignore[no-untyped-def]
    error = from_rpc_error(Fake(code, "the details"), target="h:80", method="ServerLive", token="tok-123456")
    assert type(error) is cls and isinstance(error, errors.EasnbError)
    assert error.code == code and error.details == "the details"
    assert hint_words in error.hint
    assert "ServerLive on h:80" in str(error) and "Hint:" in str(error)


def test_message_too_large_says_the_limit_is_the_servers() -> None:
    error = from_rpc_error(
        Fake(grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max (5 vs. 4)"), target="h", method="m"
    )
    assert isinstance(error, errors.MessageTooLargeError) and "server's" in error.hint


def test_translate_raises_from_none() -> None:
    with pytest.raises(errors.UnavailableError) as info:
        with errors.translate(target="h", method="m"):
            raise Fake(grpc.StatusCode.UNAVAILABLE)
    assert info.value.__suppress_context__


def test_tensor_error_is_an_invalid_argument() -> None:
    assert issubclass(errors.TensorError, errors.InvalidArgumentError)
    assert issubclass(errors.EndpointError, ValueError)
