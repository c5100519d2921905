"""A service's JSON configuration: built, read back, and checked as EAS would check it.

>>> config = ServiceConfig.hello_world(workspace_id="12345")
>>> config.validate()
[]
>>> ServiceConfig.from_json(config.to_json()) == config
True
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, EasnbError  # noqa: F401 - ConfigError importable from here as before

HELLO_WORLD_IMAGE = "eas-registry-vpc.cn-hangzhou.cr.aliyuncs.com/pai-eas/python-inference:py39-ubuntu2004"
_NAME = re.compile(r"^[a-z][a-z0-9_]{2,62}$")
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_DISK = re.compile(r"^[1-9][0-9]*Gi$")


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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServiceConfig:
        """A configuration from EAS's JSON layout; fields easnb does not model stay in ``extra``."""
        rest = copy.deepcopy(data)
        metadata = rest.get("metadata", {})
        containers = rest.get("containers") or [{}]
        container = containers[0] if isinstance(containers, list) and containers else {}
        prepare = container.get("prepare", {}) if isinstance(container, dict) else {}
        instances = rest.get("cloud", {}).get("computing", {}).get("instances") or [{}]
        storage = rest.get("storage", [])
        config = cls(
            name=metadata.get("name", ""),
            image=container.get("image", ""),
            script=container.get("script", ""),
            port=container.get("port", 50051),
            python_requirements=list(prepare.get("pythonRequirements", [])),
            instance_type=instances[0].get("type"),
            cpu=metadata.get("cpu"),
            memory_mb=metadata.get("memory"),
            disk=metadata.get("disk"),
            instance_count=metadata.get("instance", 1),
            mounts=[
                OssMount(m["oss"]["path"], m.get("mount_path", ""), bool(m["oss"].get("readOnly", False)))
                for m in storage if isinstance(m, dict) and isinstance(m.get("oss"), dict) and "path" in m["oss"]
            ],
            enable_grpc=metadata.get("enable_grpc", False),
            keepalive_ms=metadata.get("rpc", {}).get("keepalive"),
            workspace_id=metadata.get("workspace_id"),
        )
        config.extra = _difference(data, config.to_dict())
        return config

    @classmethod
    def from_json(cls, text: str) -> ServiceConfig:
        """A configuration from a ``service.json`` text."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"The service configuration is not JSON: {exc}.") from None
        if not isinstance(data, dict):
            raise ConfigError("The service configuration must be a JSON object.")
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path = "service.json") -> ServiceConfig:
        """A configuration read from a ``service.json`` file."""
        return cls.from_json(Path(path).read_text())

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
        return merge(config, self.extra)

    def to_json(self, indent: int = 4) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def write(self, path: str | Path = "service.json") -> Path:
        """Check the configuration, then write it; raises ``ConfigError`` listing every problem."""
        self.check()
        path = Path(path)
        path.write_text(self.to_json() + "\n")
        return path

    def validate(self) -> list[str]:
        """Every mistake found, in plain words (empty when none), checked on the JSON EAS gets (``extra`` merged)."""
        data = self.to_dict()
        metadata = data.get("metadata", {})
        containers = data.get("containers") or [{}]
        container = containers[0]
        problems = []
        name = metadata.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            problems.append(
                f"name {name!r}: the console's rule is 3 to 63 characters, lowercase letters, digits and "
                "underscores, starting with a letter"
            )
        if not container.get("image"):
            problems.append("image: give the container image to run")
        script = container.get("script") or ""
        if not script.strip():
            problems.append("script: give the command that starts the server, e.g. 'python /mnt/data/server.py'")
        port = container.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            problems.append(f"port {port!r}: give the port the server listens on (1-65535), e.g. 50051")
        elif port in (8080, 9090):
            problems.append(f"port {port}: EAS reserves 8080 and 9090 inside the container; listen on another, e.g. 50051")
        if metadata.get("enable_grpc") is not True:
            problems.append("metadata.enable_grpc is not true: a gRPC service needs it, or the gateway speaks HTTP to it")
        keepalive = metadata.get("rpc", {}).get("keepalive")
        if keepalive is not None:
            if not isinstance(keepalive, int) or keepalive <= 0:
                problems.append(f"rpc.keepalive {keepalive!r}: a whole number of milliseconds, e.g. 5000")
            elif keepalive < 100:
                problems.append(
                    f"rpc.keepalive {keepalive}: it is in milliseconds; did you mean {keepalive * 1000} ({keepalive} s)?"
                )
            elif keepalive > 3_600_000:
                problems.append(f"rpc.keepalive {keepalive}: over an hour per request; rpc.keepalive is in milliseconds")
        memory, disk, cpu = metadata.get("memory"), metadata.get("disk"), metadata.get("cpu")
        if memory is not None and (not isinstance(memory, int) or isinstance(memory, bool) or memory <= 0):
            problems.append(f"memory {memory!r}: a whole number of MB, e.g. 4000 (not a string such as '4Gi')")
        if disk is not None and (not isinstance(disk, str) or not _DISK.fullmatch(disk)):
            problems.append(f"disk {disk!r}: a size in Gi, e.g. '30Gi' (not '30GB' or a number)")
        instances = data.get("cloud", {}).get("computing", {}).get("instances") or []
        if not instances and not (cpu and memory):
            problems.append("resources: give instance_type (e.g. 'ecs.c7.large') or both cpu and memory_mb")
        count = metadata.get("instance", 1)
        if not isinstance(count, int) or count < 1:
            problems.append(f"instance {count!r}: at least one instance is needed")
        problems += self._mount_problems(data, script)
        requirements = container.get("prepare", {}).get("pythonRequirements", [])
        names = {_requirement_name(r) for r in requirements}
        if "python" in script and "grpcio" not in names:
            problems.append("python_requirements: a Python gRPC server needs 'grpcio'")
        problems += [f"python requirement {r!r} is not a requirement pip understands" for r in requirements if _requirement_name(r) is None]
        return problems

    @staticmethod
    def _mount_problems(data: dict[str, Any], script: str) -> list[str]:
        problems = []
        mounts = [m for m in data.get("storage", []) if isinstance(m, dict) and isinstance(m.get("oss"), dict)]
        for mount in mounts:
            if not str(mount["oss"].get("path", "")).startswith("oss://"):
                problems.append(f"mount {mount['oss'].get('path')!r}: an OSS path starts with oss://")
            if not str(mount.get("mount_path", "")).startswith("/"):
                problems.append(f"mount path {mount.get('mount_path')!r}: must be an absolute path in the container")
        files = [w for w in shlex.split(script) if w.startswith("/")]
        if mounts and files:
            roots = [str(m.get("mount_path", "")).rstrip("/") + "/" for m in mounts]
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


def _requirement_name(requirement: str) -> str | None:
    """The normalised project name of a pip requirement (``grpcio[protobuf]~=1.60`` is ``grpcio``)."""
    match = _REQUIREMENT.match(requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else None


def _difference(data: dict[str, Any], modelled: dict[str, Any]) -> dict[str, Any]:
    """What ``data`` has that ``modelled`` does not say the same way: the ``extra`` to merge back."""
    extra: dict[str, Any] = {}
    for key, value in data.items():
        if key not in modelled:
            extra[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(modelled[key], dict):
            inner = _difference(value, modelled[key])
            if inner:
                extra[key] = inner
        elif value != modelled[key]:
            extra[key] = copy.deepcopy(value)
    return extra


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, nested dicts key by key (a copy: neither is changed)."""
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def deploy_commands(
    config_path: str | Path = "service.json",
    local_folder: str = "my-grpc-demo",
    oss_path: str = "oss://my-oss/eas/my-grpc-demo/",
    region: str = "cn-hangzhou",
    name: str = "grpc_test",
) -> list[str]:
    """The shell commands of a deployment: configure eascmd, upload the code to OSS, create the service.

    ``eascmd config`` asks for the AccessKey itself; nothing secret is written here.
    """
    return [
        f"eascmd config -i <AccessKey ID> -k <AccessKey Secret> -e pai-eas.{region}.aliyuncs.com",
        f"ossutil cp -r {shlex.quote(local_folder)}/ {shlex.quote(oss_path)}",
        f"eascmd create {shlex.quote(str(config_path))}",
        f"eascmd desc {shlex.quote(name)}   # status, endpoints and token of the service",
    ]
