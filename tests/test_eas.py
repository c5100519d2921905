import json
from dataclasses import replace
from pathlib import Path

import pytest

from easnb import eas

pytestmark = pytest.mark.core

# The EAS guide's example configuration for the hello-world service, as printed there.
SEED_JSON = """
{
    "cloud": {"computing": {"instances": [{"type": "ecs.c7.large"}]}},
    "containers": [
        {
            "image": "eas-registry-vpc.cn-hangzhou.cr.aliyuncs.com/pai-eas/python-inference:py39-ubuntu2004",
            "port": 50051,
            "prepare": {"pythonRequirements": ["grpcio", "grpcio-tools"]},
            "script": "python /mnt/data/server.py"
        }
    ],
    "metadata": {
        "cpu": 2, "disk": "30Gi", "enable_grpc": true, "instance": 1, "memory": 4000, "name": "grpc_test",
        "rpc": {"keepalive": 5000}, "workspace_id": "your-workspace-id"
    },
    "storage": [{"mount_path": "/mnt/data/", "oss": {"path": "oss://my-oss/eas/my-grpc-demo/", "readOnly": false}}]
}
"""


def leaves(value, path=()):  # type: ignore[no-untyped-def]
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, (*path, i))
    else:
        yield path, value


def test_hello_world_matches_the_seed_field_by_field(tmp_path: Path) -> None:
    ours = eas.ServiceConfig.hello_world().to_dict()
    seed = json.loads(SEED_JSON)
    assert dict(leaves(ours)) == dict(leaves(seed))
    assert ours == seed
    written = eas.ServiceConfig.hello_world().write(tmp_path / "service.json")
    assert json.loads(written.read_text()) == seed


def test_extra_fields_are_merged() -> None:
    config = replace(eas.ServiceConfig.hello_world(), extra={"metadata": {"rpc": {"max_queue_size": 10}}, "networking": {"x": 1}})
    data = config.to_dict()
    assert data["metadata"]["rpc"] == {"keepalive": 5000, "max_queue_size": 10} and data["networking"] == {"x": 1}


BASE = eas.ServiceConfig.hello_world()


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"name": "Grpc-Test"}, "lowercase"),
        ({"name": "grpc-test"}, "the console's rule"),
        ({"name": "1grpc"}, "starting with a letter"),
        ({"name": "ab"}, "3 to 63"),
        ({"name": "x" * 64}, "3 to 63"),
        ({"port": 8080}, "reserves 8080"),
        ({"memory_mb": "4Gi"}, "whole number of MB"),
        ({"disk": "30GB"}, "'30Gi'"),
        ({"disk": 30}, "'30Gi'"),
        ({"disk": "30Gi\n"}, "'30Gi'"),  # "$" matches before a final newline: the rules are full matches
        ({"name": "hello_world\n"}, "the console's rule"),
        ({"extra": {"metadata": {"enable_grpc": False}}}, "enable_grpc"),
        ({"extra": {"containers": [{"image": "x", "port": 50051, "script": "python /mnt/data/server.py"}]}}, "grpcio"),
        ({"python_requirements": ["grpcio", "===bad"]}, "not a requirement"),
        ({"image": ""}, "image"),
        ({"script": " "}, "script"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"enable_grpc": False}, "enable_grpc"),
        ({"keepalive_ms": 5}, "did you mean 5000"),
        ({"keepalive_ms": 10_000_000}, "over an hour"),
        ({"instance_type": None, "cpu": None}, "instance_type"),
        ({"instance_count": 0}, "at least one instance"),
        ({"mounts": [eas.OssMount("s3://bucket/x/", "/mnt/data/")]}, "oss://"),
        ({"mounts": [eas.OssMount("oss://b/x/", "mnt/data")]}, "absolute"),
        ({"script": "python /home/admin/server.py"}, "outside every mount"),
        ({"python_requirements": ["numpy"]}, "grpcio"),
    ],
)
def test_each_validation_rule(changes: dict, words: str) -> None:  # type: ignore[type-arg]
    config = replace(BASE, **changes)
    problems = config.validate()
    assert any(words in p for p in problems), problems
    with pytest.raises(eas.ConfigError, match="problems"):
        config.check()


def test_valid_configs_have_no_problems() -> None:
    assert BASE.validate() == []
    resources = replace(BASE, instance_type=None, cpu=4, memory_mb=8000)
    assert resources.validate() == []
    # requirements pip understands are not flagged
    pinned = replace(BASE, python_requirements=["grpcio~=1.60", "grpcio-tools>=1.63", "protobuf<7"])
    extras = replace(BASE, python_requirements=["grpcio[protobuf]", "Grpcio_Tools"])
    assert pinned.validate() == [] and extras.validate() == []


def test_existing_service_json_reads_back_with_unknown_fields_kept(tmp_path: Path) -> None:
    data = json.loads(SEED_JSON)
    data["metadata"]["rpc"]["max_queue_size"] = 64
    data["networking"] = {"gateway": "gw-123"}
    (tmp_path / "service.json").write_text(json.dumps(data))
    config = eas.ServiceConfig.load(tmp_path / "service.json")
    assert config.name == "grpc_test" and config.memory_mb == 4000 and config.keepalive_ms == 5000
    assert config.extra == {"metadata": {"rpc": {"max_queue_size": 64}}, "networking": {"gateway": "gw-123"}}
    assert config.to_dict() == data and config.validate() == []
    assert eas.ServiceConfig.from_json(SEED_JSON) == eas.ServiceConfig.hello_world()
    with pytest.raises(eas.ConfigError, match="not JSON"):
        eas.ServiceConfig.from_json("{nope")


def test_endpoints_and_call_info() -> None:
    info = eas.call_info("grpc_test", "123456", "cn-hangzhou")
    # the console writes '_' in a service name as '-' in its host name
    assert info.public == "http://grpc-test.123456.cn-hangzhou.pai-eas.aliyuncs.com/"
    assert info.grpc_public == "grpc-test.123456.cn-hangzhou.pai-eas.aliyuncs.com:80"
    assert info.grpc_vpc == "grpc-test.123456.vpc.cn-hangzhou.pai-eas.aliyuncs.com:80"
    assert eas.endpoint_from_console(info.vpc) == info.grpc_vpc
    commands = eas.deploy_commands()
    assert commands[0].startswith("eascmd config") and "eascmd create service.json" in commands
