"""easnb: call PAI-EAS and Open Inference Protocol (V2) gRPC services from Jupyter.

>>> import easnb
>>> conn = easnb.connect("localhost:50051", token="...")        # doctest: +SKIP
>>> conn.infer("add_sub", {"INPUT0": a, "INPUT1": b})["OUTPUT0"]  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from . import protos
from .compare import compare  # eagerly: the module easnb.compare would shadow a lazy name
from .columns import ColumnOrderWarning
from .connection import DEFAULT, Connection, Keepalive, connect
from .doctor import doctor
from .endpoint import Endpoint, parse_endpoint
from .errors import (
    ArgumentError,
    AuthenticationError,
    BatchError,
    ClosedError,
    ConfigError,
    ControlPlaneError,
    CredentialsError,
    DeadlineError,
    EasnbError,
    EndpointError,
    FrameInput,
    InvalidArgumentError,
    LoadTestError,
    MessageTooLargeError,
    NameTakenError,
    NoPermissionError,
    NoSuchServiceError,
    NotFoundError,
    QuotaError,
    ReflectionError,
    RegionError,
    RequestError,
    ResourceExhaustedError,
    ServerError,
    StreamError,
    TensorError,
    TokenError,
    UnavailableError,
    UnimplementedError,
    UsageError,
)
from .results import InferResult, ModelMetadata, ServerMetadata, TensorMetadata
from .settings import Settings
from .tensors import Tensor

__version__ = "0.1.0"

__all__ = [
    "DEFAULT",
    "ArgumentError",
    "AuthenticationError",
    "BatchError",
    "ClosedError",
    "ColumnOrderWarning",
    "ConfigError",
    "Connection",
    "ConnectionWidget",
    "ControlPlaneError",
    "CredentialsError",
    "DeadlineError",
    "EasnbError",
    "Endpoint",
    "EndpointError",
    "FrameInput",
    "InferResult",
    "InvalidArgumentError",
    "Keepalive",
    "LoadTestError",
    "MessageTooLargeError",
    "ModelMetadata",
    "NameTakenError",
    "NoPermissionError",
    "NoSuchServiceError",
    "NotFoundError",
    "QuotaError",
    "ReflectionError",
    "RegionError",
    "RequestError",
    "ResourceExhaustedError",
    "ServerError",
    "ServerMetadata",
    "ServiceInspector",
    "Settings",
    "StreamError",
    "Tensor",
    "TensorError",
    "TensorMetadata",
    "TokenError",
    "UnavailableError",
    "UnimplementedError",
    "UsageError",
    "compare",
    "connect",
    "doctor",
    "inspect",
    "parse_endpoint",
]

_LAZY = {"ConnectionWidget": "widgets", "inspect": "workbench", "ServiceInspector": "service_inspector"}


def __getattr__(name: str) -> Any:
    # Widgets pull in ipywidgets: load them on first use, not on `import easnb`.
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'easnb' has no attribute {name!r}")
