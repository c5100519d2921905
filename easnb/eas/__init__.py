"""The EAS side of a deployment: the service's JSON, the control plane (official SDK), a local stand-in.

>>> config = ServiceConfig.hello_world(workspace_id="12345")
>>> config.validate()
[]
>>> call_info("grpc_test", "123456", "cn-hangzhou").grpc_public
'grpc-test.123456.cn-hangzhou.pai-eas.aliyuncs.com:80'
"""

from __future__ import annotations

from typing import Any

from ..errors import (
    ConfigError,
    ControlPlaneError,
    CredentialsError,
    NameTakenError,
    NoPermissionError,
    NoSuchServiceError,
    QuotaError,
    RegionError,
)
from .config import HELLO_WORLD_IMAGE, OssMount, ServiceConfig, deploy_commands
from .control import CallInfo, ControlPlane, ServiceStatus, endpoint_from_console, grpc_endpoint

__all__ = [
    "HELLO_WORLD_IMAGE", "CallInfo", "ConfigError", "ControlPlane", "ControlPlaneError", "CredentialsError",
    "NameTakenError", "NoPermissionError", "NoSuchServiceError", "OssMount", "QuotaError", "RegionError",
    "ServiceConfig", "ServiceStatus", "call_info", "delete", "deploy", "deploy_commands", "describe",
    "endpoint_from_console", "grpc_endpoint", "local", "update", "wait_until_running",
]


def call_info(name: str, uid: str | None = None, region: str = "cn-hangzhou", **plane: Any) -> CallInfo:
    """A service's gRPC endpoint and token.

    With ``uid``, the addresses follow the console's naming and need no account (no token):
    ``grpc_test`` is reached at ``grpc-test.<uid>.<region>.pai-eas.aliyuncs.com:80``. Without it,
    they come from DescribeService, token included (``endpoint=``/``credentials=`` as for ``ControlPlane``).
    """
    if uid is not None:
        host = name.replace("_", "-").lower()
        return CallInfo(f"http://{host}.{uid}.{region}.pai-eas.aliyuncs.com/", f"http://{host}.{uid}.vpc.{region}.pai-eas.aliyuncs.com/")
    return ControlPlane(region, **plane).call_info(name)


def deploy(config: Any, region: str = "cn-hangzhou", credentials: Any = None, endpoint: str | None = None) -> ServiceStatus:
    """CreateService with ``config``'s JSON (see ``ControlPlane``)."""
    return ControlPlane(region, endpoint, credentials).deploy(config)


def describe(name: str, region: str = "cn-hangzhou", **plane: Any) -> ServiceStatus:
    """DescribeService as a ``ServiceStatus`` (never the token)."""
    return ControlPlane(region, **plane).describe(name)


def wait_until_running(name: str, timeout: float = 900, progress: bool = True, region: str = "cn-hangzhou", **plane: Any) -> ServiceStatus:
    """Poll until the service is Running (see ``ControlPlane.wait_until_running``)."""
    return ControlPlane(region, **plane).wait_until_running(name, timeout, progress)


def update(config: Any, region: str = "cn-hangzhou", **plane: Any) -> str:
    """UpdateService with ``config``'s JSON."""
    return ControlPlane(region, **plane).update(config)


def delete(name: str, region: str = "cn-hangzhou", **plane: Any) -> str:
    """DeleteService."""
    return ControlPlane(region, **plane).delete(name)


def local(oss_root: Any, port: int = 0, region: str = "cn-hangzhou", access_key: Any = None) -> Any:
    """The local stand-in of the control plane, started (a context manager): see ``easnb.eas.standin``.

    Requests must be signed with ``access_key`` (``(id, secret)``; default: a generated pair,
    ``stand_in.access_key``); ``stand_in.control_plane()`` is the official SDK signing with it.
    """
    from .standin import local as start

    return start(oss_root, port, region, access_key)
