"""A local stand-in of the EAS control plane, for rehearsal and tests: the SDK's calls, answered for real.

It answers CreateService, DescribeService, UpdateService, DeleteService and ListServices
at the paths the official SDK uses, with the response fields its models define, and
really runs the service: the configuration's ``script`` from a folder standing in for
the OSS mount (``oss://bucket/path/`` is ``OSS_ROOT/bucket/path/``), its ports redirected
to loopback (``easnb.demo.launch``), behind the embedded token gateway with a generated
token. DescribeService reports ``Creating``, then ``Running`` once the server listens,
with ``InternetEndpoint`` ``http://127.0.0.1:PORT/`` (the gateway) and ``AccessToken``.
It runs the script with this Python and its packages: ``pythonRequirements`` are not installed.

    python -m easnb eas-local --port 8089 --oss-root ./oss

>>> with easnb.eas.local("oss") as stand_in:                     # doctest: +SKIP
...     plane = stand_in.control_plane()
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import socket
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .config import ServiceConfig
from .config import _merge as merge

API = "/api/v2/services"


@dataclass
class Recorded:
    """A request the stand-in received, as the SDK sent it (never the Authorization value)."""

    method: str
    path: str
    action: str
    query: dict[str, list[str]]
    headers: list[str]
    body: Any
    key_id: str = ""  # the AccessKey ID the request was signed with (never the secret or the signature)


@dataclass
class _Service:
    config: dict[str, Any]
    token: str
    created: str
    process: subprocess.Popen[str] | None = None
    gateway: Any = None
    backend: str = ""
    status: str = "Creating"
    reason: str = ""
    log: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class LocalEas:
    """The stand-in, on ``host:port`` (loopback, a free port by default). Use it as a context manager."""

    def __init__(self, oss_root: str | Path, host: str = "127.0.0.1", port: int = 0, region: str = "cn-hangzhou") -> None:
        self.oss_root = Path(oss_root).resolve()
        self.region = region
        self.services: dict[str, _Service] = {}
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer((host, port), _handler(self))
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT``: the SDK's endpoint for this stand-in."""
        host, port = self._http.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> LocalEas:
        if self._thread is None:
            self._thread = threading.Thread(target=self._http.serve_forever, name="easnb-eas-local", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        for name in list(self.services):
            self._remove(name)
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> LocalEas:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def control_plane(self) -> Any:
        """A ``ControlPlane`` (the official SDK) pointed at this stand-in, with throwaway local credentials."""
        from .control import ControlPlane

        return ControlPlane(self.region, endpoint=self.endpoint, credentials=local_credentials())

    # -- the API ---------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, dict[str, Any]]:
        parts = [unquote(p) for p in path[len(API):].strip("/").split("/") if p]
        if method == "POST" and not parts:
            return 200, self._create(body)
        if method == "GET" and not parts:
            return 200, self._list()
        if len(parts) != 2:
            raise ApiError(404, "InvalidAction.NotFound", f"no such API: {method} {path}")
        region, name = parts
        if region != self.region:
            raise ApiError(400, "InvalidRegionId", f"this stand-in serves region {self.region}, not {region}")
        if method == "GET":
            return 200, self._describe(name)
        if method == "PUT":
            return 200, self._update(name, body)
        if method == "DELETE":
            self._service(name)
            self._remove(name)
            return 200, {"Message": f"service {name} deleted"}
        raise ApiError(405, "InvalidAction", f"{method} is not allowed here")

    def _service(self, name: str) -> _Service:
        service = self.services.get(name)
        if service is None:
            raise ApiError(404, "ServiceNotFound", f"service {name} not found in {self.region}")
        return service

    def _create(self, body: Any) -> dict[str, Any]:
        config = _checked(body)
        name = config["metadata"]["name"]
        with self._lock:
            if name in self.services:
                raise ApiError(409, "ServiceAlreadyExists", f"service {name} already exists in {self.region}")
            service = _Service(config, secrets.token_urlsafe(24), _now())
            self.services[name] = service
        self._run(service)
        return {"ServiceName": name, "ServiceId": f"eas-m-{name}", "Status": service.status, "Region": self.region,
                "InternetEndpoint": self._endpoint(service), "IntranetEndpoint": self._endpoint(service)}

    def _update(self, name: str, body: Any) -> dict[str, Any]:
        service = self._service(name)
        config = _checked(merge(service.config, body if isinstance(body, dict) else {}))
        self._stop_running(service)
        service.config, service.status, service.reason = config, "Creating", ""
        self._run(service)
        return {"Message": f"service {name} updated"}

    def _describe(self, name: str) -> dict[str, Any]:
        service = self._service(name)
        self._refresh(service)
        instances = service.config["metadata"].get("instance", 1)
        running = instances if service.status == "Running" else 0
        return {
            "ServiceName": name, "ServiceId": f"eas-m-{name}", "Region": self.region, "Status": service.status,
            "Reason": service.reason, "Message": service.reason, "CreateTime": service.created,
            "RunningInstance": running, "PendingInstance": instances - running, "TotalInstance": instances,
            "InternetEndpoint": self._endpoint(service), "IntranetEndpoint": self._endpoint(service),
            "AccessToken": service.token, "ServiceConfig": json.dumps(service.config),
            "Image": service.config["containers"][0].get("image", ""), "Memory": service.config["metadata"].get("memory", 0),
            "Cpu": service.config["metadata"].get("cpu", 0),
        }

    def _list(self) -> dict[str, Any]:
        found = [self._describe(name) for name in sorted(self.services)]
        for entry in found:
            entry.pop("AccessToken", None)
        return {"Services": found, "TotalCount": len(found), "PageNumber": 1, "PageSize": 100}

    # -- running the service -------------------------------------------------------------------

    def _endpoint(self, service: _Service) -> str:
        return f"http://127.0.0.1:{service.gateway.port}/" if service.gateway else ""

    def _run(self, service: _Service) -> None:
        from ..demo import Gateway

        script, folder = self._script(service.config)
        service.backend = f"127.0.0.1:{_free_port()}"
        service.process = subprocess.Popen(
            [sys.executable, "-m", "easnb.demo.launch", str(script), service.backend], cwd=folder,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        threading.Thread(target=_collect, args=(service,), daemon=True).start()
        service.gateway = Gateway(service.backend, token=service.token).start()

    def _script(self, config: dict[str, Any]) -> tuple[Path, Path]:
        """The local file the script runs, found through the mounts standing in for OSS."""
        words = shlex.split(config["containers"][0].get("script", ""))
        mounts = {m["mount_path"].rstrip("/") + "/": m["oss"]["path"] for m in config.get("storage", []) if "oss" in m}
        for word in words:
            for mount, oss in mounts.items():
                if word.startswith(mount):
                    folder = self.oss_root / oss[len("oss://"):].strip("/")
                    file = folder / word[len(mount):]
                    if not file.is_file():
                        raise ApiError(400, "InvalidParameter", f"{word} is not in {oss} (looked in {file})")
                    return file, file.parent
        raise ApiError(400, "InvalidParameter", "the stand-in runs a script under a mounted OSS folder, e.g. python /mnt/data/server.py")

    def _refresh(self, service: _Service) -> None:
        if service.status != "Creating" or service.process is None:
            return
        if service.process.poll() is not None:
            service.status, service.reason = "Failed", "the server exited: " + " | ".join(service.log[-5:])
            return
        host, port = service.backend.rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                service.status = "Running"
        except OSError:
            service.reason = "the server is starting"

    def _stop_running(self, service: _Service) -> None:
        if service.gateway is not None:
            service.gateway.stop(0.5)
        if service.process is not None and service.process.poll() is None:
            service.process.terminate()
            try:
                service.process.wait(10)
            except subprocess.TimeoutExpired:
                service.process.kill()

    def _remove(self, name: str) -> None:
        service = self.services.pop(name, None)
        if service is not None:
            self._stop_running(service)

    def __repr__(self) -> str:
        return f"<LocalEas {self.endpoint} ({len(self.services)} services), OSS at {self.oss_root}>"


def local_credentials() -> Any:
    """Throwaway keys the SDK signs with for the stand-in (which checks only that requests are signed)."""
    from alibabacloud_credentials import models
    from alibabacloud_credentials.client import Client as Credentials

    return Credentials(models.Config(type="access_key", access_key_id="local", access_key_secret="local"))


def _collect(service: _Service) -> None:
    assert service.process is not None and service.process.stdout is not None
    for line in service.process.stdout:
        service.log.append(line.rstrip())


def _checked(body: Any) -> dict[str, Any]:
    from ..errors import EasnbError

    if not isinstance(body, dict):
        raise ApiError(400, "InvalidParameter", "the body must be the service's JSON configuration")
    try:
        ServiceConfig.from_dict(body).check()
    except EasnbError as exc:
        raise ApiError(400, "InvalidParameter", exc.message) from None
    return body


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _handler(stand_in: LocalEas) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = raw.decode("utf-8", "replace")
            signed = re.search(r"Credential=([^,/\s]+)", self.headers.get("Authorization", ""))
            stand_in.requests.append(Recorded(
                self.command, parts.path, self.headers.get("x-acs-action", ""), parse_qs(parts.query),
                sorted(h.lower() for h in self.headers), body, signed.group(1) if signed else "",
            ))
            request_id = str(uuid.uuid4()).upper()
            try:
                if not self.headers.get("Authorization"):
                    raise ApiError(400, "MissingAuthorization", "the request is not signed")
                status, answer = stand_in.handle(self.command, parts.path, parse_qs(parts.query), body)
            except ApiError as exc:
                status, answer = exc.status, {"Code": exc.code, "Message": exc.message}
            data = json.dumps({"RequestId": request_id, **answer}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:  # quiet: the requests are recorded instead
            pass

    return Handler


def local(oss_root: str | Path, port: int = 0, region: str = "cn-hangzhou") -> LocalEas:
    """Start the stand-in on loopback; use it as a context manager (``with easnb.eas.local(dir) as s:``)."""
    return LocalEas(oss_root, port=port, region=region).start()
