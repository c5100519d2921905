"""UNAVAILABLE hints chosen from what gRPC says and what the environment holds (issue 23.6).

gRPC reads proxy variables when a channel is made, so calls under a proxy environment run
in a subprocess with that environment. The proxy is a closed loopback port, or a small
CONNECT proxy on loopback (tests/proxyparts.py).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import easnb
from easnb.demo import DemoServer
from easnb.proxy import proxy_for
from easnb.unreachable import unavailable_hint

from .proxyparts import ConnectProxy, closed_port

PROXY_NAMES = {"grpc_proxy", "https_proxy", "http_proxy", "no_grpc_proxy", "no_proxy"}

CALL = """
import json, sys, easnb
args = json.loads(sys.argv[1])
try:
    if args.get("doctor"):
        steps = easnb.doctor(args["endpoint"], args.get("token"), timeout=3).steps
        out = [[s.name, s.ok, s.detail, s.hint] for s in steps]
    else:
        with easnb.connect(args["endpoint"], token=args.get("token"), timeout=args.get("timeout", 5), retries=0,
                           options=args.get("options")) as conn:
            out = {"ok": conn.live()}
except easnb.EasnbError as exc:
    out = {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint}
print(json.dumps(out))
"""


def run_with(env: dict[str, str], **args: Any) -> Any:
    """``CALL`` in a subprocess whose proxy variables are exactly ``env``."""
    clean = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_NAMES}
    done = subprocess.run([sys.executable, "-c", CALL, json.dumps(args)], env={**clean, **env},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer(token="tok-unavailable") as demo:
        yield demo


def closed_proxy() -> str:
    return f"http://127.0.0.1:{closed_port()}"


@pytest.mark.parametrize("variable", ["http_proxy", "https_proxy", "grpc_proxy"])
def test_a_proxy_that_is_down_is_named_with_both_fixes(server: DemoServer, variable: str) -> None:
    proxy = closed_proxy()
    got = run_with({variable: proxy}, endpoint=server.endpoint, token=server.token)
    assert got["type"] == "UnavailableError"
    hint = got["hint"]
    assert proxy.removeprefix("http://") in hint and f"${variable}" in hint and "proxy is down" in hint
    assert "no_proxy=127.0.0.1" in hint and "'grpc.enable_http_proxy': 0" in hint
    assert "VPC" not in hint and "security group" not in hint


def test_each_fix_in_the_hint_works(server: DemoServer) -> None:
    proxy = closed_proxy()
    assert run_with({"http_proxy": proxy, "no_proxy": "127.0.0.1"}, endpoint=server.endpoint, token=server.token) == {"ok": True}
    got = run_with({"http_proxy": proxy}, endpoint=server.endpoint, token=server.token, options={"grpc.enable_http_proxy": 0})
    assert got == {"ok": True}


@pytest.mark.parametrize(("answer", "words"), [
    ("403 Forbidden", "refused to open a tunnel"), ("407 Proxy Authentication Required", "wants credentials"),
    ("close", "closed the connection"),
])
def test_a_proxy_that_refuses_says_how(server: DemoServer, answer: str, words: str) -> None:
    proxy = ConnectProxy(answer)
    try:
        got = run_with({"https_proxy": proxy.url}, endpoint=server.endpoint, token=server.token)
    finally:
        proxy.close()
    assert got["type"] == "UnavailableError" and words in got["hint"] and f"127.0.0.1:{proxy.port}" in got["hint"]
    assert proxy.requests and proxy.requests[0].startswith("CONNECT 127.0.0.1:")


def test_a_silent_proxy_is_named_when_the_deadline_passes(server: DemoServer) -> None:
    proxy = ConnectProxy("silent")
    try:
        got = run_with({"grpc_proxy": proxy.url}, endpoint=server.endpoint, token=server.token, timeout=1.5)
    finally:
        proxy.close()
    # gRPC ends it either at the deadline or as UNAVAILABLE "Endpoint closing": both name the proxy
    assert got["type"] in ("DeadlineError", "UnavailableError"), got
    assert f"HTTP proxy 127.0.0.1:{proxy.port} (from $grpc_proxy)" in got["hint"] and "no_proxy=127.0.0.1" in got["hint"]
    if got["type"] == "UnavailableError":
        assert "does not answer" in got["hint"]


def test_through_a_working_proxy_calls_and_the_doctor_pass(server: DemoServer) -> None:
    proxy = ConnectProxy("tunnel")
    try:
        assert run_with({"http_proxy": proxy.url}, endpoint=server.endpoint, token=server.token) == {"ok": True}
        steps = run_with({"http_proxy": proxy.url}, endpoint=server.endpoint, token=server.token, doctor=True)
    finally:
        proxy.close()
    assert [s[1] for s in steps] == [True] * len(steps), steps
    assert steps[1][0] == "proxy" and f"HTTP proxy 127.0.0.1:{proxy.port} (from $http_proxy) opens a tunnel" in steps[1][2]
    assert sum(r.startswith(f"CONNECT {server.endpoint}") for r in proxy.requests) >= 3  # the doctor's and gRPC's


def test_the_doctor_stops_at_a_proxy_that_is_down(server: DemoServer) -> None:
    proxy = closed_proxy()
    steps = {s[0]: s for s in run_with({"https_proxy": proxy}, endpoint=server.endpoint, token=server.token, doctor=True)}
    name, ok, detail, hint = steps["proxy"]
    assert ok is False and proxy.removeprefix("http://") in detail and "does not answer" in detail
    assert "no_proxy=127.0.0.1" in hint and "grpc.enable_http_proxy" in hint
    assert steps["DNS"][1] is None and steps["token"][1] is None  # the proxy is the first step that fails


def test_a_proxy_without_credentials_it_needs_sends_none_and_the_url_ones_never_show(server: DemoServer) -> None:
    proxy = ConnectProxy("tunnel")
    url = proxy.url.replace("http://", "http://alice:s3cret-pw@")
    try:
        steps = run_with({"http_proxy": url}, endpoint=server.endpoint, token=server.token, doctor=True)
    finally:
        proxy.close()
    assert all(s[1] for s in steps) and "s3cret-pw" not in json.dumps(steps)
    assert any(r.endswith("+auth") for r in proxy.requests)


def test_upper_case_proxy_variables_are_named_as_ignored() -> None:
    got = run_with({"HTTPS_PROXY": closed_proxy()}, endpoint=f"127.0.0.1:{closed_port()}")
    assert "Nothing listens on" in got["hint"] and "$HTTPS_PROXY is set, but gRPC reads only the lower-case" in got["hint"]


DECIDE = """
import json, os, socket, sys, grpc
from easnb.proxy import proxy_for
def closed():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]
wrong = []
for env in json.loads(sys.argv[1]):
    for name in [k for k in os.environ if k.lower() in {"grpc_proxy", "https_proxy", "http_proxy", "no_proxy", "no_grpc_proxy"}]:
        del os.environ[name]
    proxy, target = closed(), closed()
    os.environ.update({k: v.replace("PROXY", f"http://127.0.0.1:{proxy}") for k, v in env.items()})
    channel = grpc.insecure_channel(f"127.0.0.1:{target}")
    try:
        channel.unary_unary("/x.Y/Z")(b"", timeout=5)
    except grpc.RpcError as exc:
        details = exc.details()
    channel.close()
    by_grpc = f":{proxy}" in details
    ours = proxy_for(f"127.0.0.1:{target}") is not None
    if by_grpc != ours or (not by_grpc and f":{target}" not in details):
        wrong.append([env, by_grpc, ours, details])
print(json.dumps(wrong))
"""


def test_easnb_decides_the_proxy_as_grpc_does() -> None:
    cases = [
        {"http_proxy": "PROXY"}, {"HTTP_PROXY": "PROXY"}, {"https_proxy": "PROXY"}, {"HTTPS_PROXY": "PROXY"},
        {"grpc_proxy": "PROXY"}, {"GRPC_PROXY": "PROXY"}, {"https_proxy": "PROXY", "http_proxy": ""},
        {"http_proxy": "PROXY", "no_proxy": "127.0.0.1"}, {"http_proxy": "PROXY", "NO_PROXY": "127.0.0.1"},
        {"http_proxy": "PROXY", "no_grpc_proxy": "127.0.0.1"}, {"http_proxy": "PROXY", "no_proxy": "localhost"},
        {"http_proxy": "PROXY", "no_proxy": "*"}, {"http_proxy": "PROXY", "no_proxy": "127.0.0.0/8"},
        {"http_proxy": "PROXY", "no_proxy": "10.0.0.0/8, .0.0.1"}, {"http_proxy": "127.0.0.1:9"},
    ]
    clean = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_NAMES}
    done = subprocess.run([sys.executable, "-c", DECIDE, json.dumps(cases)], env=clean, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


# -- every cause gRPC reports on connect, each with its own hint (no proxy) -----------------------------


def _listener(handle: Any) -> int:
    sock = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                client, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return sock.getsockname()[1]


def _http1(client: socket.socket) -> None:
    client.recv(4096)
    client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    client.close()


def _hint_of(endpoint: str, **options: Any) -> str:
    with easnb.connect(endpoint, timeout=5, retries=0, **options) as conn:
        with pytest.raises(easnb.UnavailableError) as caught:
            conn.live()
    return caught.value.hint


@pytest.fixture(scope="module")
def tls_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    import grpc
    from concurrent import futures

    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    tls_server = grpc.server(futures.ThreadPoolExecutor(2))
    port = tls_server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())]))
    tls_server.start()
    yield port, cert
    tls_server.stop(None)


def test_every_connect_failure_has_its_own_hint(tls_port: tuple[int, Path]) -> None:
    port, cert = tls_port
    full = socket.create_server(("127.0.0.1", 0), backlog=0)  # a listener whose queue is full: SYNs go unanswered
    fillers = [socket.socket() for _ in range(8)]
    for filler in fillers:
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", full.getsockname()[1]))
        except BlockingIOError:
            pass
    time.sleep(0.3)
    quick = {"grpc.client_channel.min_connect_timeout_ms": 1000, "grpc.initial_reconnect_backoff_ms": 1000}
    hints = {
        "refused": _hint_of(f"127.0.0.1:{closed_port()}"),
        "http1": _hint_of(f"127.0.0.1:{_listener(_http1)}"),
        "closed": _hint_of(f"127.0.0.1:{_listener(lambda c: c.close())}"),
        "tls to plaintext": _hint_of(f"127.0.0.1:{_listener(_http1)}", tls=True),
        "tls closed": _hint_of(f"127.0.0.1:{_listener(lambda c: c.close())}", tls=True),
        "untrusted": _hint_of(f"localhost:{port}", tls=True),
        "wrong name": _hint_of(f"127.0.0.1:{port}", tls=True, root_certificates=cert),
        "timeout": _hint_of(f"127.0.0.1:{full.getsockname()[1]}", options=quick),
    }
    for filler in fillers:
        filler.close()
    full.close()
    expected = {
        "refused": "Nothing listens on 127.0.0.1:", "http1": "An HTTP/1.x server answered", "closed": "closed the connection at once",
        "tls to plaintext": "answers without TLS", "tls closed": "during the TLS handshake", "untrusted": "root_certificates=",
        "wrong name": "not issued for 127.0.0.1", "timeout": "timed out",
    }
    for cause, words in expected.items():
        assert words in hints[cause], (cause, hints[cause])
    assert len(set(hints.values())) == len(hints)  # each its own


def test_dns_failures_name_the_host_or_the_proxy() -> None:
    """grpcio 1.85's words for a name that does not resolve (recorded here: resolving needs a DNS server off loopback)."""
    target_down = ("errors resolving no-such-host.invalid:80: [field:hostname lookup error:address lookup failed for "
                   "no-such-host.invalid:80: Domain name not found]")
    hint = unavailable_hint(target_down, {"target": "no-such-host.invalid:80"})
    assert hint is not None and "no-such-host.invalid does not resolve" in hint
    proxy = proxy_for("127.0.0.1:5", environ={"http_proxy": "http://no-such-proxy.invalid:3128"})
    proxy_down = target_down.replace("no-such-host.invalid:80", "no-such-proxy.invalid:3128")
    hint = unavailable_hint(proxy_down, {"target": "127.0.0.1:5", "proxy": proxy})
    assert hint is not None and "proxy's host name no-such-proxy.invalid does not resolve" in hint
    assert "VPC endpoint" in (unavailable_hint(target_down, {"target": "x.vpc.example:80", "is_vpc": True}) or "")
