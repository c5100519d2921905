"""The EAS stand-in checks requests as the control plane does: signature, host, paths, sizes, form.

Driven with the official SDK (both of its signatures) and with raw HTTP: unsigned, wrongly
signed, replayed, traversal paths, links out of the OSS folder, bad Host, huge and malformed bodies.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from easnb import eas

pytest.importorskip("alibabacloud_eas20210701", reason="the eas extra (alibabacloud-eas20210701) is not installed")

from alibabacloud_tea_openapi.utils import Utils  # noqa: E402  (the SDK's own signer)

from .seedparts import SEED  # noqa: E402

API = "/api/v2/services"
MARK = "STAND_IN_MUST_NOT_LEAK_7c1e"


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("standin")
    oss, outside = root / "oss", root / "outside"
    folder = oss / "my-oss" / "app"
    folder.mkdir(parents=True)
    outside.mkdir()
    shutil.copy(SEED / "server.py", folder)
    (outside / "evil.py").write_text(f"print({MARK!r})\n")
    (folder / "link.py").symlink_to(outside / "evil.py")  # a link planted in the OSS folder, leading out
    (oss / "my-oss" / "out").symlink_to(outside, target_is_directory=True)
    (folder / "notes.txt").write_text(f"{MARK}\n")
    (folder / "broken.py").write_text(f"{MARK} = = 1\n")  # Python echoes this line in its SyntaxError
    with eas.local(oss) as running:
        yield running


class _Request:
    """What the SDK's signer reads: method, pathname, query, headers."""

    def __init__(self, method: str, pathname: str, headers: dict[str, str], query: dict[str, str] | None = None) -> None:
        self.method, self.pathname, self.headers, self.query = method, pathname, headers, query or {}


_nonce = iter(range(10**9))


def signed(stand_in: Any, method: str, path: str, body: bytes = b"", key: tuple[str, str] | None = None,
           host: str | None = None, **extra: str) -> dict[str, str]:
    """Headers for a request signed as the SDK signs it (ACS3-HMAC-SHA256), by its own signing function."""
    key_id, secret = key or (stand_in.access_key.id, stand_in.access_key.secret)
    headers = {
        "host": stand_in.endpoint if host is None else host, "x-acs-action": "Test", "x-acs-version": "2021-07-01",
        "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "x-acs-signature-nonce": f"nonce-{time.time_ns()}-{next(_nonce)}", "accept": "application/json",
        "x-acs-content-sha256": Utils.hash(body, "ACS3-HMAC-SHA256").hex(), **extra,
    }
    if body:
        headers["content-type"] = "application/json; charset=utf-8"
    headers["Authorization"] = Utils.get_authorization(_Request(method, path, headers), "ACS3-HMAC-SHA256",
                                                       headers["x-acs-content-sha256"], key_id, secret)
    return headers


def send(stand_in: Any, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], bytes]:
    host, port = stand_in.endpoint.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for name, value in (headers or {}).items():
        connection.putheader(name, value)
    if body and "Content-Length" not in (headers or {}):
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body or None)
    reply = connection.getresponse()
    raw = reply.read()
    connection.close()
    return reply.status, json.loads(raw), raw


def exchange(stand_in: Any, raw: bytes) -> str:
    """Send raw bytes; everything the stand-in answers until it closes the connection."""
    host, port = stand_in.endpoint.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(raw)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode("latin-1")


def config(name: str, script: str, oss: str = "oss://my-oss/app/") -> bytes:
    made = eas.ServiceConfig.hello_world(oss_path=oss, name=name).to_dict()
    made["containers"][0]["script"] = script
    return json.dumps(made).encode()


def test_unsigned_and_wrongly_signed_requests_get_the_services_errors(stand_in: Any) -> None:
    path = f"{API}/{stand_in.region}/anything"
    status, answer, _ = send(stand_in, "GET", path, headers={"Host": stand_in.endpoint})
    assert (status, answer["Code"]) == (400, "IncompleteSignature")
    for authorization in ("Bearer x", "ACS3-HMAC-SHA256 Credential=x", "acs :"):
        status, answer, _ = send(stand_in, "GET", path, headers={"Host": stand_in.endpoint, "Authorization": authorization})
        assert (status, answer["Code"]) == (400, "IncompleteSignature"), authorization
    status, answer, _ = send(stand_in, "GET", path, headers=signed(stand_in, "GET", path, key=(stand_in.access_key.id, "wrong")))
    assert (status, answer["Code"]) == (400, "SignatureDoesNotMatch") and "string to sign" in answer["Message"]
    status, answer, _ = send(stand_in, "GET", path, headers=signed(stand_in, "GET", path, key=("LOCALNOBODY", "x")))
    assert (status, answer["Code"]) == (404, "InvalidAccessKeyId.NotFound")
    good = signed(stand_in, "GET", path)
    assert send(stand_in, "GET", path, headers=good)[1]["Code"] == "ServiceNotFound"  # signed: the API answers
    assert send(stand_in, "GET", path, headers=good)[1]["Code"] == "SignatureNonceUsed"  # replayed
    other = f"{API}/{stand_in.region}/other"
    assert send(stand_in, "GET", other, headers=signed(stand_in, "GET", path))[1]["Code"] == "SignatureDoesNotMatch"
    stale = signed(stand_in, "GET", path, **{"x-acs-date": "2020-01-01T00:00:00Z"})
    assert send(stand_in, "GET", path, headers=stale)[1]["Code"] == "InvalidTimeStamp.Expired"
    body = config("tampered", "python /mnt/data/server.py")
    headers = signed(stand_in, "POST", API, body)
    status, answer, _ = send(stand_in, "POST", API, body.replace(b"tampered", b"tampere2"), headers)
    assert status == 400 and answer["Code"] in ("ContentSHA256NotMatched", "SignatureDoesNotMatch")
    assert "tampered" not in stand_in.services and "tampere2" not in stand_in.services


def test_the_sdks_older_roa_signature_works_too(stand_in: Any) -> None:
    from alibabacloud_eas20210701.client import Client
    from alibabacloud_eas20210701.models import ListServicesRequest
    from alibabacloud_tea_openapi import models as openapi

    def client(secret: str) -> Any:
        return Client(openapi.Config(credential=eas.standin.credentials_for(eas.standin.AccessKey(stand_in.access_key.id, secret)),
                                     endpoint=stand_in.endpoint, protocol="http", region_id=stand_in.region, signature_algorithm="v2"))

    assert client(stand_in.access_key.secret).list_services(ListServicesRequest()).body.total_count >= 0
    assert stand_in.requests[-1].key_id == stand_in.access_key.id
    with pytest.raises(Exception, match="SignatureDoesNotMatch"):
        client("wrong").list_services(ListServicesRequest())


def test_the_token_goes_only_to_signed_callers(stand_in: Any) -> None:
    plane = stand_in.control_plane()
    plane.deploy(eas.ServiceConfig.hello_world(oss_path="oss://my-oss/app/", name="tokened"))
    try:
        token = plane.call_info("tokened").token.reveal()
        path = f"{API}/{stand_in.region}/tokened"
        for headers in ({"Host": stand_in.endpoint}, signed(stand_in, "GET", path, key=(stand_in.access_key.id, "guess"))):
            status, answer, raw = send(stand_in, "GET", path, headers=headers)
            assert status >= 400 and "AccessToken" not in answer and token.encode() not in raw
        status, answer, _ = send(stand_in, "GET", path, headers=signed(stand_in, "GET", path))
        assert status == 200 and answer["AccessToken"] == token
    finally:
        plane.delete("tokened")


@pytest.mark.parametrize(("script", "oss"), [
    ("python /mnt/data/../../outside/evil.py", "oss://my-oss/app/"),
    ("python /mnt/data//etc/hostname.py", "oss://my-oss/app/"),          # an absolute path after the mount
    ("python /mnt/data/./server.py", "oss://my-oss/app/"),
    ("python /mnt/data/server.py", "oss://../outside/"),
    ("python /mnt/data/evil.py", "oss://my-oss/../../outside/"),
    ("python /mnt/data/evil.py", "oss:///abs/outside/"),
    ("python /mnt/data/link.py", "oss://my-oss/app/"),                   # a link to a file outside
    ("python /mnt/data/evil.py", "oss://my-oss/out/"),                   # a linked folder leading outside
    ("python /mnt/data/notes.txt", "oss://my-oss/app/"),                 # not Python: its contents were echoed
    ("python /mnt/data/missing.py", "oss://my-oss/app/"),
    ("python /mnt/data/server\x00.py", "oss://my-oss/app/"),             # NUL: was a 500 from inside pathlib
    ("python /mnt/data/server.py", "oss://my-oss/app\x00/"),
])
def test_only_python_files_inside_the_oss_folder_run(stand_in: Any, script: str, oss: str) -> None:
    body = config("escape", script, oss)
    status, answer, raw = send(stand_in, "POST", API, body, signed(stand_in, "POST", API, body))
    assert (status, answer["Code"]) == (400, "InvalidParameter"), answer
    assert "escape" not in stand_in.services and MARK.encode() not in raw


def test_a_missing_script_says_which_local_folder_stands_in_for_oss(stand_in: Any) -> None:
    """The README's deploy cells against `easnb eas-local` with nothing copied yet: the refusal names the
    folder to put the script in (it named only the oss:// address, which a newcomer has no way to fill)."""
    body = config("nofile", "python /mnt/data/missing.py", "oss://my-oss/app/")
    status, answer, _ = send(stand_in, "POST", API, body, signed(stand_in, "POST", API, body))
    assert (status, answer["Code"]) == (400, "InvalidParameter")
    assert str(stand_in.oss_root / "my-oss" / "app") in answer["Message"], answer


def test_a_failed_service_keeps_its_output_out_of_the_answers(stand_in: Any) -> None:
    plane = stand_in.control_plane()
    plane.deploy(json.loads(config("broken", "python /mnt/data/broken.py")))
    try:
        deadline = time.monotonic() + 60
        while (status := plane.describe("broken")).status != "Failed" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status.status == "Failed" and "exited with status" in status.reason
        path = f"{API}/{stand_in.region}/broken"
        raw = send(stand_in, "GET", path, headers=signed(stand_in, "GET", path))[2]
        assert MARK.encode() not in raw
        assert any(MARK in line for line in stand_in.logs("broken"))  # the owner still sees why
    finally:
        plane.delete("broken")


def test_only_loopback_hosts_are_answered(stand_in: Any) -> None:
    path = f"{API}/{stand_in.region}/x"
    port = stand_in.endpoint.rsplit(":", 1)[1]
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.nip.io:{port}", ""):
        status, answer, _ = send(stand_in, "GET", path, headers=signed(stand_in, "GET", path, host=host))
        assert (status, answer["Code"]) == (400, "InvalidHost"), host
    for host in (f"localhost:{port}", "localhost", f"127.0.0.1:{port}"):
        status, answer, _ = send(stand_in, "GET", path, headers=signed(stand_in, "GET", path, host=host))
        assert answer["Code"] == "ServiceNotFound", host


def test_a_huge_body_is_refused_unread(stand_in: Any) -> None:
    reply = exchange(stand_in, f"POST {API} HTTP/1.1\r\nHost: {stand_in.endpoint}\r\nContent-Length: {100 << 20}\r\n\r\n".encode() + b"x" * 65536)
    assert reply.startswith("HTTP/1.0 413") and '"Code": "RequestEntityTooLarge"' in reply
    body = b"[" + b"1," * (1 << 20) + b"1]"  # 2 MiB, really sent
    status, answer, _ = send(stand_in, "POST", API, body, signed(stand_in, "POST", API, body))
    assert (status, answer["Code"]) == (413, "RequestEntityTooLarge")


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET /api/v2/services HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
    b"POST /api/v2/services HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"PATCH /api/v2/services HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /api/v2/services HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Long: " + b"a" * 70000 + b"\r\n\r\n",
])
def test_malformed_requests_get_an_error_answer(stand_in: Any, raw: bytes) -> None:
    reply = exchange(stand_in, raw.replace(b"Host: 127.0.0.1", f"Host: {stand_in.endpoint}".encode()))
    head, _, body = reply.partition("\r\n\r\n")
    assert head.split()[1].startswith(("4", "5")) and "Code" in json.loads(body), reply


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"containers": "x"}', b'{"metadata": {"name": 1}}', b"[" * 100000])
def test_malformed_signed_bodies_get_invalid_parameter(stand_in: Any, body: bytes) -> None:
    status, answer, _ = send(stand_in, "POST", API, body, signed(stand_in, "POST", API, body))
    assert (status, answer["Code"]) == (400, "InvalidParameter"), answer


def _held(stand_in: Any, seconds: float) -> float:
    """Send a request's head a byte a second (slowloris); how long until the stand-in ends the connection."""
    host, port = stand_in.endpoint.rsplit(":", 1)
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=2) as s:
        s.sendall(f"GET {API} HTTP/1.1\r\nHost: {stand_in.endpoint}\r\n".encode())
        while time.monotonic() - started < seconds:
            try:
                s.sendall(b"X")
                if s.recv(1) == b"":
                    break
            except socket.timeout:
                continue
            except OSError:
                break
    return time.monotonic() - started


def test_a_client_sending_a_byte_at_a_time_cannot_hold_a_connection(stand_in: Any) -> None:
    """A byte every second kept a connection (and its thread) forever: each read had 30 s."""
    from easnb.eas.standin_http import REQUEST_S

    assert _held(stand_in, REQUEST_S + 15) < REQUEST_S + 5


def test_many_idle_connections_hold_a_bounded_number_of_threads(stand_in: Any) -> None:
    """200 connections that send nothing made 200 threads; past the limit they are closed at once, and the
    stand-in answers again once the held ones run out of time."""
    import threading

    from easnb.eas.standin_http import MAX_CONNECTIONS, REQUEST_S

    host, port = stand_in.endpoint.rsplit(":", 1)
    before = threading.active_count()
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(200)]
    try:
        time.sleep(1.0)
        assert threading.active_count() - before <= MAX_CONNECTIONS + 2
        path = f"{API}/{stand_in.region}/nothing-here"
        deadline = time.monotonic() + REQUEST_S + 10
        while True:
            try:
                status, answer, _ = send(stand_in, "GET", path, headers=signed(stand_in, "GET", path))
                break
            except (OSError, http.client.HTTPException):
                assert time.monotonic() < deadline
                time.sleep(0.5)
        assert answer["Code"] == "ServiceNotFound"
    finally:
        for s in idle:
            s.close()


def test_clients_that_reset_their_connection_print_no_traceback(tmp_path: Path) -> None:
    """A client resetting its connection before the answer printed socketserver's traceback in the
    terminal running ``easnb eas-local``."""
    import os
    import struct
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen([sys.executable, "-m", "easnb", "eas-local", "--port", "0", "--oss-root", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root,
                               env={**os.environ, "PYTHONPATH": str(root)})
    try:
        port = int(process.stdout.readline().split("127.0.0.1:")[1].split()[0])  # type: ignore[union-attr]
        request = f"GET {API} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        for burst in [1] * 20 + [2000]:
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(request * burst)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
            if burst > 1:
                time.sleep(0.05)  # while the stand-in writes its answers
            s.close()
        time.sleep(1.0)
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert "Traceback" not in err and "Error" not in err, err[-2000:]
