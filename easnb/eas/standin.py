"""A local stand-in of the EAS control plane, for rehearsal and tests: the SDK's calls, answered for real.

It answers CreateService, DescribeService, UpdateService, DeleteService and ListServices
at the paths the official SDK uses, with the response fields its models define, and
really runs the service: the configuration's ``script`` from a folder standing in for
the OSS mount (``oss://bucket/path/`` is ``OSS_ROOT/bucket/path/``), its ports redirected
to loopback (``easnb.demo.launch``), behind the embedded token gateway with a generated
token. DescribeService reports ``Creating``, then ``Running`` once the server listens,
with ``InternetEndpoint`` ``http://127.0.0.1:PORT/`` (the gateway) and ``AccessToken``.
It runs the script with this Python and its packages: ``pythonRequirements`` are not installed.

It checks requests as the control plane does: each must be signed by the SDK with the
stand-in's AccessKey pair (given, or generated at start: ``stand_in.access_key``), carry
``Host: 127.0.0.1`` or ``localhost``, and hold a body under 1 MiB. The script must be a
``.py`` file inside a mounted OSS folder (no ``..``, absolute path or link leading out).
A failed service's output is in ``stand_in.logs(name)``, never in the API's answers.

    python -m easnb eas-local --port 8089 --oss-root ./oss     # prints the AccessKey pair to use

>>> with easnb.eas.local("oss") as stand_in:                     # doctest: +SKIP
...     plane = stand_in.control_plane()                          # signs with the stand-in's pair
"""

from __future__ import annotations

import json
import secrets
import shlex
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .config import ServiceConfig
from .config import merge
from .signature import AccessKey, Refused, Verifier
from .standin_http import Server, handler

API = "/api/v2/services"
KEPT_REQUESTS = 100  # signed requests only, each body under 1 MiB: at most ~100 MiB
_HOSTS = ("127.0.0.1", "localhost", "[::1]")


@dataclass
class Recorded:
    """A request the stand-in received, as the SDK sent it (never the Authorization value)."""

    method: str
    path: str
    action: str
    query: dict[str, list[str]]
    headers: list[str]
    body: Any
    key_id: str = ""  # the AccessKey ID the request was signed with, once verified (never the secret or the signature)


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
    log: deque[str] = field(default_factory=lambda: deque(maxlen=1000))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


ApiError = Refused  # an answer with an error: HTTP status, the service's error code, a message


class LocalEas:
    """The stand-in, on ``host:port`` (loopback, a free port by default). Use it as a context manager.

    ``access_key`` is the pair requests must be signed with (an ``AccessKey`` or ``(id, secret)``;
    default: a generated one, in ``self.access_key``). ``log(name, line)`` is called with each
    line a service prints. ``requests`` keeps the last 100 signed requests.
    """

    def __init__(
        self,
        oss_root: str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "cn-hangzhou",
        access_key: AccessKey | tuple[str, str] | None = None,
        log: Callable[[str, str], None] | None = None,
    ) -> None:
        self.oss_root = Path(oss_root).resolve()
        self.region = region
        if isinstance(access_key, tuple):
            access_key = AccessKey(*access_key)
        self.access_key = access_key or AccessKey.generate()
        self.verifier = Verifier(self.access_key)
        self.services: dict[str, _Service] = {}
        self.requests: deque[Recorded] = deque(maxlen=KEPT_REQUESTS)
        self._log = log
        self._lock = threading.Lock()
        self._http = Server((host, port), handler(self))
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT``: the SDK's endpoint for this stand-in."""
        host, port = self._http.socket.getsockname()[:2]  # what server_address holds, as (str, int) for IPv4
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

    def hosts(self) -> set[str]:
        """The ``Host`` values answered: loopback by name or address, with or without the port."""
        port = self._http.server_address[1]
        return {h for host in _HOSTS for h in (host, f"{host}:{port}")}

    def credentials(self) -> Any:
        """The SDK's credentials for this stand-in's AccessKey pair."""
        return credentials_for(self.access_key)

    def control_plane(self) -> Any:
        """A ``ControlPlane`` (the official SDK) pointed at this stand-in, signing with its AccessKey pair."""
        from .control import ControlPlane

        return ControlPlane(self.region, endpoint=self.endpoint, credentials=self.credentials())

    def record(self, *request: Any) -> None:
        """Keep a checked request (as ``Recorded``'s fields), the last ``KEPT_REQUESTS`` of them."""
        self.requests.append(Recorded(*request))

    def logs(self, name: str) -> list[str]:
        """The last lines service ``name`` printed (its server's output)."""
        return list(self._service(name).log)

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
        self._script(config)  # refused before anything is kept or run
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
        self._script(config)
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
        threading.Thread(target=_collect, args=(service, self._log), daemon=True).start()
        service.gateway = Gateway(service.backend, token=service.token).start()

    def _script(self, config: dict[str, Any]) -> tuple[Path, Path]:
        """The local ``.py`` file the script runs, found through the mounts standing in for OSS, never outside them."""
        try:
            words = shlex.split(config["containers"][0].get("script", ""))
            mounts = {m["mount_path"].rstrip("/") + "/": m["oss"]["path"] for m in config.get("storage", []) if "oss" in m}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ApiError(400, "InvalidParameter", f"the script or the storage mounts cannot be read: {exc!r}") from None
        for word in words:
            for mount, oss in mounts.items():
                if word.startswith(mount):
                    folder = self._folder(oss)
                    file = _inside(folder, word[len(mount):], word)
                    if file.suffix != ".py" or not file.is_file():
                        raise ApiError(400, "InvalidParameter", f"{word} is not a Python file in {oss} (this stand-in"
                                       f" reads {oss} from the folder {folder}: put the script there)")
                    return file, file.parent
        raise ApiError(400, "InvalidParameter", "the stand-in runs a script under a mounted OSS folder, e.g. python /mnt/data/server.py")

    def _folder(self, oss: Any) -> Path:
        """The local folder of an ``oss://bucket/path/`` address, inside the OSS root."""
        if not isinstance(oss, str) or not oss.startswith("oss://"):
            raise ApiError(400, "InvalidParameter", f"{oss!r} is not an oss://bucket/path/ address")
        return _inside(self.oss_root, oss[len("oss://"):], oss)

    def _refresh(self, service: _Service) -> None:
        if service.status != "Creating" or service.process is None:
            return
        if service.process.poll() is not None:  # its output stays out of the answer: stand_in.logs(name) has it
            service.status = "Failed"
            service.reason = f"the server exited with status {service.process.returncode}; its output is in the stand-in's log"
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


def credentials_for(key: AccessKey) -> Any:
    """The SDK's credentials for an AccessKey pair."""
    from alibabacloud_credentials import models
    from alibabacloud_credentials.client import Client as Credentials

    return Credentials(models.Config(type="access_key", access_key_id=key.id, access_key_secret=key.secret))


def _inside(root: Path, relative: str, given: str) -> Path:
    """``root / relative`` with links resolved, refused unless it stays inside ``root``."""
    parts = relative.split("/")
    if relative.startswith("/") or "\\" in relative or "\x00" in relative or any(p in ("..", ".") for p in parts):
        raise ApiError(400, "InvalidParameter", f"{given!r} leads outside its folder: no '..', '.', NUL or absolute paths")
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ApiError(400, "InvalidParameter", f"{given!r} leads outside its folder (through a link)")
    return path


def _collect(service: _Service, log: Callable[[str, str], None] | None) -> None:
    assert service.process is not None and service.process.stdout is not None
    name = service.config["metadata"]["name"]
    for line in service.process.stdout:
        service.log.append(line.rstrip())
        if log is not None:
            log(name, line.rstrip())


def _checked(body: Any) -> dict[str, Any]:
    from ..errors import EasnbError

    if not isinstance(body, dict):
        raise ApiError(400, "InvalidParameter", "the body must be the service's JSON configuration")
    try:
        ServiceConfig.from_dict(body).check()
    except EasnbError as exc:
        raise ApiError(400, "InvalidParameter", exc.message) from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        raise ApiError(400, "InvalidParameter", f"the configuration cannot be read: {exc!r}") from None
    return body


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def local(oss_root: str | Path, port: int = 0, region: str = "cn-hangzhou", access_key: AccessKey | tuple[str, str] | None = None) -> LocalEas:
    """Start the stand-in on loopback; use it as a context manager (``with easnb.eas.local(dir) as s:``).

    Requests must be signed with ``access_key`` (default: a generated pair, ``s.access_key``);
    ``s.control_plane()`` is the official SDK signing with it.
    """
    return LocalEas(oss_root, port=port, region=region, access_key=access_key).start()
