import pytest

from easnb.endpoint import Endpoint, parse_endpoint
from easnb.errors import EndpointError

pytestmark = pytest.mark.core

GOOD = [
    ("http://grpc-test.123456.cn-hangzhou.pai-eas.aliyuncs.com/", "grpc-test.123456.cn-hangzhou.pai-eas.aliyuncs.com:80", False),
    ("http://grpc-test.123456.vpc.cn-hangzhou.pai-eas.aliyuncs.com/", "grpc-test.123456.vpc.cn-hangzhou.pai-eas.aliyuncs.com:80", False),
    ("grpc-test.123456.cn-hangzhou.pai-eas.aliyuncs.com:80", "grpc-test.123456.cn-hangzhou.pai-eas.aliyuncs.com:80", False),
    ("grpc-test.123456.cn-hangzhou.pai-eas.aliyuncs.com", "grpc-test.123456.cn-hangzhou.pai-eas.aliyuncs.com:80", False),
    ("localhost", "localhost:80", False),
    ("localhost:50051", "localhost:50051", False),
    ("127.0.0.1:8001", "127.0.0.1:8001", False),
    ("https://example.com/", "example.com:443", True),
    ("https://example.com:8443", "example.com:8443", True),
    ("[::1]:50051", "[::1]:50051", False),
    ("[::1]", "[::1]:80", False),
    ("::1", "[::1]:80", False),
    ("  http://host.example/  ", "host.example:80", False),
    ("localhost:50051/", "localhost:50051", False),
    ("HTTP://Host.Example:81", "host.example:81", False),
    ("grpc://host:9000", "host:9000", False),
    ("grpcs://host", "host:443", True),
    ("my_service.internal:1234", "my_service.internal:1234", False),
]

BAD = [
    "", "   ", "\n", "host name", "a b:80", "host:0", "host:65536", "host:99999", "host:-1",
    "host:abc", "host:", "ftp://host", "ws://host", "://host", "http://", "https:///path",
    "http://user:pass@host", "user@host:80", "-host", "host-.com", "a..b", "1.2.3.999",
    "[::1", "[zz]:80", "ho$t", "a:b:c", "http://ho st/", "host\t:80", "x" * 300,
]


@pytest.mark.parametrize(("text", "target", "tls"), GOOD)
def test_good_endpoints(text: str, target: str, tls: bool) -> None:
    endpoint = parse_endpoint(text)
    assert (endpoint.target, endpoint.tls) == (target, tls)


def test_vpc_is_recognised() -> None:
    assert parse_endpoint("http://s.1.vpc.cn-hangzhou.pai-eas.aliyuncs.com/").is_vpc
    assert not parse_endpoint("http://s.1.cn-hangzhou.pai-eas.aliyuncs.com/").is_vpc


def test_tls_override() -> None:
    assert parse_endpoint("host", tls=True) == Endpoint("host", 443, True)
    assert parse_endpoint("https://host:8443", tls=False).tls is False


@pytest.mark.parametrize("text", BAD)
def test_bad_endpoints_say_what_and_how(text: str) -> None:
    with pytest.raises(EndpointError) as info:
        parse_endpoint(text)
    assert "not valid" in str(info.value)
    assert "valid endpoint looks like" in info.value.hint


def test_non_string() -> None:
    with pytest.raises(EndpointError, match="must be a string"):
        parse_endpoint(42)  # type: ignore[arg-type]


def test_password_is_not_echoed() -> None:
    with pytest.raises(EndpointError) as info:
        parse_endpoint("http://alice:hunter2@host/")
    assert "hunter2" not in str(info.value) and "alice" not in str(info.value)
