"""The EAS side of a deployment: a service's JSON configuration, checked, and its endpoints.

>>> config = ServiceConfig.hello_world(workspace_id="12345")
>>> config.validate()
[]
>>> endpoint_from_console("http://grpc_test.123.cn-hangzhou.pai-eas.aliyuncs.com/")
'grpc_test.123.cn-hangzhou.pai-eas.aliyuncs.com:80'
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .endpoint import parse_endpoint
from .errors import EasnbError

HELLO_WORLD_IMAGE = "eas-registry-vpc.cn-hangzhou.cr.aliyuncs.com/pai-eas/python-inference:py39-ubuntu2004"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class ConfigError(EasnbError, ValueError):
    """A service configuration EAS would refuse, or that would not work once deployed."""

    default_hint = "Fix the fields named above; ServiceConfig.validate() lists every problem."


@dataclass
class OssMount:
    """An OSS folder mounted into the container (``storage`` in the JSON)."""

    oss_path: str
    mount_path: str
    read_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"mount_path": self.mount_path, "oss": {"path": self.oss_path, "readOnly": self.read_only}}


@dataclass
class ServiceConfig:
    """An EAS service's JSON configuration, for the console's JSON deployment or ``eascmd create``.

    ``keepalive_ms`` is ``metadata.rpc.keepalive``: the longest a request may take, in
    milliseconds. ``extra`` is merged last, for fields easnb does not model.
    """

    name: str
    image: str
    script: str
    port: int = 50051
    python_requirements: list[str] = field(default_factory=list)
    instance_type: str | None = None
    cpu: int | None = None
    memory_mb: int | None = None
    disk: str | None = None
    instance_count: int = 1
    mounts: list[OssMount] = field(default_factory=list)
    enable_grpc: bool = True
    keepalive_ms: int | None = None
    workspace_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def hello_world(
        cls,
        oss_path: str = "oss://my-oss/eas/my-grpc-demo/",
        workspace_id: str = "your-workspace-id",
        name: str = "grpc_test",
    ) -> ServiceConfig:
        """The EAS guide's hello-world GreeterService, as its example JSON has it."""
        return cls(
            name=name,
            image=HELLO_WORLD_IMAGE,
            script="python /mnt/data/server.py",
            port=50051,
            python_requirements=["grpcio", "grpcio-tools"],
            instance_type="ecs.c7.large",
            cpu=2,
            memory_mb=4000,
            disk="30Gi",
            instance_count=1,
            mounts=[OssMount(oss_path, "/mnt/data/")],
            enable_grpc=True,
            keepalive_ms=5000,
            workspace_id=workspace_id,
        )

    def to_dict(self) -> dict[str, Any]:
        """The configuration as EAS's JSON layout."""
        container: dict[str, Any] = {"image": self.image, "port": self.port}
        if self.python_requirements:
            container["prepare"] = {"pythonRequirements": list(self.python_requirements)}
        container["script"] = self.script
        metadata: dict[str, Any] = {}
        for key, value in (("cpu", self.cpu), ("disk", self.disk)):
            if value is not None:
                metadata[key] = value
        metadata["enable_grpc"] = self.enable_grpc
        metadata["instance"] = self.instance_count
        if self.memory_mb is not None:
            metadata["memory"] = self.memory_mb
        metadata["name"] = self.name
        if self.keepalive_ms is not None:
            metadata["rpc"] = {"keepalive": self.keepalive_ms}
        if self.workspace_id:
            metadata["workspace_id"] = self.workspace_id
        config: dict[str, Any] = {}
        if self.instance_type:
            config["cloud"] = {"computing": {"instances": [{"type": self.instance_type}]}}
        config["containers"] = [container]
        config["metadata"] = metadata
        if self.mounts:
            config["storage"] = [m.to_dict() for m in self.mounts]
        return _merge(config, self.extra)

    def to_json(self, indent: int = 4) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def write(self, path: str | Path = "service.json") -> Path:
        """Check the configuration, then write it; raises ``ConfigError`` listing every problem."""
        self.check()
        path = Path(path)
        path.write_text(self.to_json() + "\n")
        return path

    def validate(self) -> list[str]:
        """Every mistake found, in plain words (empty when none)."""
        problems = []
        if not _NAME.match(self.name or ""):
            problems.append(
                f"name {self.name!r}: a service name starts with a lowercase letter and has only lowercase "
                "letters, digits and underscores, at most 64 characters"
            )
        if not self.image:
            problems.append("image: give the container image to run")
        if not self.script or not self.script.strip():
            problems.append("script: give the command that starts the server, e.g. 'python /mnt/data/server.py'")
        if not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            problems.append(f"port {self.port!r}: give the port the server listens on (1-65535), e.g. 50051")
        if not self.enable_grpc:
            problems.append("enable_grpc is off: a gRPC service needs metadata.enable_grpc = true, or the gateway speaks HTTP to it")
        if self.keepalive_ms is not None:
            if self.keepalive_ms < 100:
                problems.append(
                    f"keepalive_ms {self.keepalive_ms}: rpc.keepalive is in milliseconds; "
                    f"did you mean {self.keepalive_ms * 1000} ({self.keepalive_ms} s)?"
                )
            elif self.keepalive_ms > 3_600_000:
                problems.append(f"keepalive_ms {self.keepalive_ms}: over an hour per request; rpc.keepalive is in milliseconds")
        if not self.instance_type and not (self.cpu and self.memory_mb):
            problems.append("resources: give instance_type (e.g. 'ecs.c7.large') or both cpu and memory_mb")
        if self.instance_count < 1:
            problems.append(f"instance_count {self.instance_count}: at least one instance is needed")
        problems += self._mount_problems()
        if "python" in self.script and not any(r.split("=")[0].split(">")[0].strip() == "grpcio" for r in self.python_requirements):
            problems.append("python_requirements: a Python gRPC server needs 'grpcio'")
        return problems

    def _mount_problems(self) -> list[str]:
        problems = []
        for mount in self.mounts:
            if not mount.oss_path.startswith("oss://"):
                problems.append(f"mount {mount.oss_path!r}: an OSS path starts with oss://")
            if not mount.mount_path.startswith("/"):
                problems.append(f"mount path {mount.mount_path!r}: must be an absolute path in the container")
        files = [w for w in shlex.split(self.script or "") if w.startswith("/")]
        if self.mounts and files:
            roots = [m.mount_path.rstrip("/") + "/" for m in self.mounts]
            for file in files:
                if not any(file.startswith(root) for root in roots):
                    problems.append(
                        f"script runs {file}, which is outside every mount ({', '.join(roots)}): "
                        "the file will not be in the container; put it under the mount path"
                    )
        return problems

    def check(self) -> None:
        """Raise ``ConfigError`` listing every problem ``validate`` finds."""
        problems = self.validate()
        if problems:
            raise ConfigError("The service configuration has problems:\n- " + "\n- ".join(problems))


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def endpoint_from_console(url: str) -> str:
    """The gRPC endpoint for a console address: the domain plus ``:80``, without ``http://``."""
    return parse_endpoint(url).target


@dataclass(frozen=True)
class CallInfo:
    """The call-info panel's two addresses for a service, and their gRPC endpoints."""

    public: str
    vpc: str

    @property
    def grpc_public(self) -> str:
        return endpoint_from_console(self.public)

    @property
    def grpc_vpc(self) -> str:
        return endpoint_from_console(self.vpc)


def call_info(service: str, uid: str, region: str) -> CallInfo:
    """The public and VPC console addresses of ``service`` owned by ``uid`` in ``region``.

    As in the console, ``_`` in a service name becomes ``-`` in its host name:
    the guide's ``grpc_test`` is reached at ``grpc-test.<uid>.<region>.pai-eas.aliyuncs.com``.
    """
    host = service.replace("_", "-").lower()
    return CallInfo(
        public=f"http://{host}.{uid}.{region}.pai-eas.aliyuncs.com/",
        vpc=f"http://{host}.{uid}.vpc.{region}.pai-eas.aliyuncs.com/",
    )


def deploy_commands(config_path: str | Path = "service.json", local_folder: str = "my-grpc-demo", oss_path: str = "oss://my-oss/eas/my-grpc-demo/") -> list[str]:
    """The shell commands of a deployment: upload the code to OSS, create the service."""
    return [
        f"ossutil cp -r {shlex.quote(local_folder)}/ {shlex.quote(oss_path)}",
        f"eascmd create {shlex.quote(str(config_path))}",
    ]
