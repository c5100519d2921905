import grpc
import pytest

from easnb import errors
from easnb.rpc_errors import from_rpc_error

pytestmark = pytest.mark.core


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
        (grpc.StatusCode.UNIMPLEMENTED, errors.UnimplementedError, "conn.service"),
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


def test_unimplemented_never_blames_the_server() -> None:
    error = from_rpc_error(Fake(grpc.StatusCode.UNIMPLEMENTED, ""), target="h", method="/inference.GRPCInferenceService/ServerLive")
    assert "server's side" not in error.hint and "V2" in error.hint
    offered = from_rpc_error(
        Fake(grpc.StatusCode.UNIMPLEMENTED), target="h", method="/a.B/C", offered=["helloworld.GreeterService"]
    )
    assert "helloworld.GreeterService" in offered.hint


def test_redaction_replaces_the_whole_token_only() -> None:
    assert errors.redact("failed to connect to all addresses", "t") == "failed to connect to all addresses"
    assert errors.redact("token t was refused; Bearer t", "t") == "token *** was refused; Bearer ***"
    assert errors.redact("got abc123, expected xyz", "abc123") == "got ***, expected xyz"
    assert errors.redact("xabc123 abc1234", "abc123") == "xabc123 abc1234"


@pytest.mark.parametrize(
    ("details", "limit", "cls", "words"),
    [
        ("Received message larger than max (5000 vs. 4096)", 4096, errors.MessageTooLargeError, "client's own max_message_bytes=4096"),
        ("Sent message larger than max (5000 vs. 4096)", 4096, errors.MessageTooLargeError, "client's own"),
        ("Received message larger than max (5000 vs. 4194304)", -1, errors.MessageTooLargeError, "server's"),
        ("Concurrent RPC limit exceeded!", -1, errors.ResourceExhaustedError, "calls in flight"),
        ("received metadata size exceeds hard limit (value length 20000 vs. 16384)", -1, errors.ResourceExhaustedError, "headers"),
        ("Quota exceeded", -1, errors.ResourceExhaustedError, "quota"),
    ],
)
def test_resource_exhausted_is_told_apart(details: str, limit: int, cls: type, words: str) -> None:
    error = from_rpc_error(Fake(grpc.StatusCode.RESOURCE_EXHAUSTED, details), target="h", method="m", max_message_bytes=limit)
    assert type(error) is cls and words in error.hint


@pytest.mark.parametrize(
    ("details", "tls", "words"),
    [
        ("failed to connect; Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: WRONG_VERSION_NUMBER", True, "answers without TLS: use http://"),
        ("failed to connect; Handshake failed: CERTIFICATE_VERIFY_FAILED: self signed certificate", True, "root_certificates"),
        ("failed to connect to all addresses; last error: UNAVAILABLE: ipv4:1.2.3.4:80: Socket closed", False, "TLS"),
    ],
)
def test_tls_problems_get_the_tls_hint(details: str, tls: bool, words: str) -> None:
    error = from_rpc_error(Fake(grpc.StatusCode.UNAVAILABLE, details), target="h", method="m", tls=tls, is_vpc=True)
    assert words in error.hint and "VPC" not in error.hint.split(".")[0]


def test_tensor_error_is_an_invalid_argument() -> None:
    assert issubclass(errors.TensorError, errors.InvalidArgumentError)
    assert issubclass(errors.EndpointError, ValueError)
