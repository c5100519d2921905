"""TLS: implied by https://, with the server's certificate given as the root."""

from __future__ import annotations

import shutil
import subprocess
from concurrent import futures
from pathlib import Path

import grpc
import pytest

import easnb
from easnb.demo.server import V2Service, v2_handler


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    server = grpc.server(futures.ThreadPoolExecutor(4), handlers=[v2_handler(V2Service())])
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield port, cert
    server.stop(None)


def test_https_endpoint_with_root_certificate(tls_server) -> None:  # type: ignore[no-untyped-def]
    port, cert = tls_server
    with easnb.connect(f"https://localhost:{port}/", root_certificates=cert) as conn:
        assert conn.endpoint.tls and "TLS" in repr(conn)
        assert conn.live() and conn.server_metadata().name == "easnb-demo"
    with easnb.connect(f"localhost:{port}", tls=True, root_certificates=Path(cert).read_bytes()) as conn:
        assert conn.ready()


def test_untrusted_certificate_is_a_clear_error(tls_server) -> None:  # type: ignore[no-untyped-def]
    port, _ = tls_server
    with easnb.connect(f"https://localhost:{port}/", timeout=3, retries=0) as conn:
        with pytest.raises(easnb.UnavailableError):
            conn.live()
    with easnb.connect(f"localhost:{port}", timeout=3, retries=0) as conn:  # plaintext to a TLS port
        with pytest.raises(easnb.UnavailableError):
            conn.live()
