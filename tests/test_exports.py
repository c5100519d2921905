import subprocess
import sys

import pytest

import easnb

pytestmark = pytest.mark.core

EXPECTED = {
    "BatchError", "ClosedError", "FrameInput", "ConfigError", "ControlPlaneError", "CredentialsError", "LoadTestError", "NameTakenError",
    "NoPermissionError", "NoSuchServiceError", "QuotaError", "RegionError", "UsageError",
    "DEFAULT", "ArgumentError", "AuthenticationError", "ColumnOrderWarning", "Connection", "ConnectionWidget", "DeadlineError", "EasnbError",
    "Endpoint", "EndpointError", "InferResult", "InvalidArgumentError", "Keepalive", "MessageTooLargeError",
    "ModelMetadata", "NotFoundError", "ReflectionError", "RequestError", "ResourceExhaustedError", "ServerError", "ServerMetadata", "ServiceInspector", "Settings", "StreamError", "Tensor", "TensorError",
    "TensorMetadata", "TokenError", "UnavailableError", "UnimplementedError", "compare", "connect", "doctor", "inspect", "parse_endpoint",
}


def test_public_names_are_pinned() -> None:
    assert set(easnb.__all__) == EXPECTED and len(easnb.__all__) == len(EXPECTED)


def test_import_does_not_load_widgets() -> None:
    code = "import sys, easnb; print('ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
