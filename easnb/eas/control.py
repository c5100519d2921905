"""The EAS control plane through the official SDK (``alibabacloud-eas20210701``): deploy, describe, wait, call, delete.

Credentials come from the SDK's own chain: ``ALIBABA_CLOUD_ACCESS_KEY_ID`` and
``ALIBABA_CLOUD_ACCESS_KEY_SECRET``, or ``~/.alibabacloud/credentials.ini``, or
``~/.aliyun/config.json``, or an instance RAM role named in ``ALIBABA_CLOUD_ECS_METADATA``;
never from a code cell. The same calls work against ``easnb.eas.local`` (the stand-in):
only the SDK's ``endpoint`` differs.

>>> plane = ControlPlane(region="cn-hangzhou")                  # doctest: +SKIP
>>> plane.deploy(ServiceConfig.hello_world(...))                # doctest: +SKIP
>>> plane.wait_until_running("grpc_test")                       # doctest: +SKIP
>>> conn = plane.call_info("grpc_test").connect()               # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..credentials import Token
from ..endpoint import parse_endpoint
from ..errors import (  # noqa: F401 - the control plane's errors, importable from here as before
    ControlPlaneError,
    CredentialsError,
    EasnbError,
    NameTakenError,
    NoPermissionError,
    NoSuchServiceError,
    QuotaError,
    RegionError,
)
from ..progress import Waiting
from .config import ServiceConfig

DONE = {"Running"}
FAILED = {"Failed", "Stopped", "Deleted", "Deleting", "Stopping"}
_CREDENTIAL_SOURCES = (
    "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_CREDENTIALS_FILE", "ALIBABA_CLOUD_ECS_METADATA",
    "ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_CREDENTIALS_URI",
)


@dataclass(frozen=True)
class ServiceStatus:
    """What DescribeService says of a service; never the token itself (``has_token`` says whether there is one)."""

    name: str
    status: str
    reason: str = ""
    message: str = ""
    running: int = 0
    total: int = 0
    public: str = ""
    vpc: str = ""
    has_token: bool = False
    region: str = ""

    @property
    def is_running(self) -> bool:
        return self.status in DONE


@dataclass(frozen=True)
class CallInfo:
    """A service's addresses (as the console's call-info panel shows them), their gRPC endpoints, and its token."""

    public: str
    vpc: str = ""
    token: Token | None = field(default=None, repr=False)
    name: str = ""

    @property
    def grpc_public(self) -> str:
        """The gRPC endpoint of the public address: the service's own domain on port 80."""
        return grpc_endpoint(self.public, self.name)

    @property
    def grpc_vpc(self) -> str:
        return grpc_endpoint(self.vpc, self.name) if self.vpc else ""

    @property
    def endpoint(self) -> str:
        return self.grpc_public

    def connect(self, **options: Any) -> Any:
        """An ``easnb`` connection to the public gRPC endpoint, with the service's token."""
        from ..connection import connect

        return connect(self.grpc_public, token=self.token, **options)

    def __repr__(self) -> str:
        token = ", token set" if self.token else ""
        return f"CallInfo({self.grpc_public}{token})"


def endpoint_from_console(url: str) -> str:
    """The gRPC endpoint for a console address: the domain plus ``:80``, without ``http://``."""
    return grpc_endpoint(url)


def grpc_endpoint(url: str, name: str = "") -> str:
    """``host:port`` for gRPC from an address DescribeService or the console gives.

    The shared gateway's HTTP form ``http://<uid>.<region>.pai-eas.aliyuncs.com/api/predict/<name>``
    becomes the service's own domain, as the console names it: ``_`` in the name becomes ``-``.
    """
    parts = urlsplit(url if "://" in url else f"http://{url}")
    path = parts.path.strip("/")
    if path.startswith("api/predict/"):
        service = (name or path.split("/")[2]).replace("_", "-").lower()
        return f"{service}.{parts.hostname}:80"
    return parse_endpoint(f"{parts.scheme}://{parts.netloc}/").target


def _has_credentials() -> bool:
    home = Path.home()
    files = (home / ".alibabacloud" / "credentials.ini", home / ".aliyun" / "config.json")
    return any(os.environ.get(name) for name in _CREDENTIAL_SOURCES) or any(f.is_file() for f in files)


def default_credentials() -> Any:
    """Credentials as the SDK's chain finds them, read now; ``CredentialsError`` when there are none.

    The access-key variables are read at call time (the SDK reads them once, at import). Without
    any source the chain is not asked at all, so nothing probes the instance metadata service.
    """
    from alibabacloud_credentials import models
    from alibabacloud_credentials.client import Client as Credentials

    key, secret = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID"), os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    if key and secret:
        kind = "sts" if os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN") else "access_key"
        return Credentials(models.Config(
            type=kind, access_key_id=key, access_key_secret=secret, security_token=os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN"),
        ))
    if not _has_credentials():
        raise CredentialsError("No Alibaba Cloud credentials were found in the environment or the credentials file.")
    return Credentials()


def translate(exc: Exception, action: str, name: str = "") -> ControlPlaneError:
    """The most specific ``ControlPlaneError`` for an SDK exception."""
    code = str(getattr(exc, "code", "") or type(exc).__name__)
    status = getattr(exc, "statusCode", None) or (getattr(exc, "data", None) or {}).get("statusCode")
    message = str(getattr(exc, "message", "") or exc).split(" Response:")[0]
    text = f"{code} {message}".lower()
    if "credential" in text or "signature" in text or "accesskey" in text:  # SignatureDoesNotMatch, InvalidAccessKeyId.*
        cls: type[ControlPlaneError] = CredentialsError
    elif status == 403 or "forbidden" in text or "permission" in text or "unauthorized" in text:
        cls = NoPermissionError
    elif "already exist" in text or "duplicate" in text or status == 409:
        cls = NameTakenError
    elif status == 404 or "notfound" in text.replace(" ", "") or "not found" in text:
        cls = NoSuchServiceError
    elif "quota" in text or "insufficient" in text or "limit" in text:
        cls = QuotaError
    elif "region" in text or "name or service not known" in text or "nodename" in text or "connection" in text:
        cls = RegionError
    else:
        cls = ControlPlaneError
    error = cls(f"{action}{' ' + repr(name) if name else ''} failed: {message}")
    error.details = code
    return error


class ControlPlane:
    """One region's EAS control plane, through the official SDK.

    ``endpoint`` defaults to ``pai-eas.<region>.aliyuncs.com``; point it at ``easnb.eas.local``'s
    endpoint to rehearse. ``credentials`` is an ``alibabacloud_credentials`` client; by default
    the SDK's own chain finds them (environment variables or credentials file).
    """

    def __init__(self, region: str = "cn-hangzhou", endpoint: str | None = None, credentials: Any = None, protocol: str | None = None) -> None:
        try:
            from alibabacloud_eas20210701.client import Client
            from alibabacloud_tea_openapi import models as openapi
        except ImportError:
            raise EasnbError(
                "Deploying to EAS needs the official SDK.", hint="pip install 'easnb[eas]'  (alibabacloud-eas20210701)"
            ) from None
        if credentials is None:
            credentials = default_credentials()
        self.region = region
        self.endpoint = endpoint or f"pai-eas.{region}.aliyuncs.com"
        local = self.endpoint.startswith(("127.", "localhost", "[::1]"))
        self._client = Client(openapi.Config(
            credential=credentials, endpoint=self.endpoint, region_id=region,
            protocol=protocol or ("http" if local else "https"), read_timeout=30_000, connect_timeout=10_000,
        ))

    def _call(self, action: str, name: str, run: Any) -> Any:
        try:
            return run()
        except Exception as exc:
            error = translate(exc, action, name)
        raise error  # outside the except block: the SDK's exception (and its request) is not kept

    def deploy(self, config: ServiceConfig | dict[str, Any] | str) -> ServiceStatus:
        """CreateService with the configuration's JSON (checked first)."""
        from alibabacloud_eas20210701 import models

        body = _config_json(config)
        workspace = json.loads(body).get("metadata", {}).get("workspace_id")
        request = models.CreateServiceRequest(body=body, workspace_id=workspace if workspace and workspace != "your-workspace-id" else None)
        reply = self._call("CreateService", _name(body), lambda: self._client.create_service(request)).body
        return ServiceStatus(reply.service_name or _name(body), reply.status or "Creating",
                             public=reply.internet_endpoint or "", vpc=reply.intranet_endpoint or "", region=reply.region or self.region)

    def describe(self, name: str) -> ServiceStatus:
        """DescribeService: status, reason, instances, endpoints; whether a token exists (never the token)."""
        body = self._call("DescribeService", name, lambda: self._client.describe_service(self.region, name)).body
        return ServiceStatus(
            name=body.service_name or name, status=body.status or "", reason=body.reason or "", message=body.message or "",
            running=body.running_instance or 0, total=body.total_instance or 0,
            public=body.internet_endpoint or "", vpc=body.intranet_endpoint or "",
            has_token=bool(body.access_token), region=body.region or self.region,
        )

    def call_info(self, name: str) -> CallInfo:
        """The service's gRPC endpoint (``host:80`` form) and its token, from DescribeService."""
        body = self._call("DescribeService", name, lambda: self._client.describe_service(self.region, name)).body
        token = Token(body.access_token) if body.access_token else None
        return CallInfo(body.internet_endpoint or "", body.intranet_endpoint or "", token, name)

    def wait_until_running(self, name: str, timeout: float = 900, progress: bool = True, interval: float = 2.0) -> ServiceStatus:
        """Poll DescribeService until the service is Running; raise on Failed or after ``timeout`` seconds."""
        from ..errors import DeadlineError

        ends = time.monotonic() + timeout
        with Waiting(f"deploying {name}", timeout) if progress else nullcontext() as line:
            while True:
                status = self.describe(name)
                if line is not None:
                    line.update(f"{status.status} {status.running}/{status.total}")
                if status.is_running:
                    if line is not None:
                        line.done()
                    return status
                if status.status in FAILED:
                    raise ControlPlaneError(
                        f"Service {name!r} is {status.status}: {status.reason} {status.message}".strip(),
                        hint="The service's events and logs in the PAI-EAS console say why.",
                    )
                if time.monotonic() + interval > ends:
                    raise DeadlineError(
                        f"Service {name!r} was not Running within {timeout:g} s; last status: {status.status} {status.reason}".strip(),
                        hint="Creating can take minutes (pulling the image, installing requirements): wait longer.",
                    )
                time.sleep(interval)

    def update(self, config: ServiceConfig | dict[str, Any] | str) -> str:
        """UpdateService with the configuration's JSON; returns the control plane's message."""
        from alibabacloud_eas20210701 import models

        body = _config_json(config)
        name = _name(body)
        reply = self._call("UpdateService", name, lambda: self._client.update_service(self.region, name, models.UpdateServiceRequest(body=body)))
        return reply.body.message or ""

    def delete(self, name: str) -> str:
        """DeleteService; returns the control plane's message."""
        return self._call("DeleteService", name, lambda: self._client.delete_service(self.region, name)).body.message or ""

    def list_services(self) -> list[ServiceStatus]:
        """ListServices: every service in the region, as ``ServiceStatus``."""
        from alibabacloud_eas20210701 import models

        body = self._call("ListServices", "", lambda: self._client.list_services(models.ListServicesRequest())).body
        return [
            ServiceStatus(s.service_name or "", s.status or "", s.reason or "", s.message or "", s.running_instance or 0,
                          s.total_instance or 0, s.internet_endpoint or "", s.intranet_endpoint or "", bool(s.access_token), s.region or "")
            for s in body.services or []
        ]

    def __repr__(self) -> str:
        return f"<ControlPlane {self.region} at {self.endpoint}>"


def _config_json(config: ServiceConfig | dict[str, Any] | str) -> str:
    if isinstance(config, str):
        config = ServiceConfig.from_json(config)
    elif isinstance(config, dict):
        config = ServiceConfig.from_dict(config)
    config.check()
    return config.to_json()


def _name(body: str) -> str:
    return str(json.loads(body).get("metadata", {}).get("name", ""))

