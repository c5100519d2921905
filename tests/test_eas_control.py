"""The EAS control plane through the official SDK (not a mock of it), against the local stand-in."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

import easnb
from easnb import eas

from .seedparts import ROOT, SEED, seed_client

pytest.importorskip("alibabacloud_eas20210701", reason="the eas extra (alibabacloud-eas20210701) is not installed")
OSS = "oss://my-oss/eas/my-grpc-demo/"


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[eas.standin.LocalEas]:  # type: ignore[name-defined]
    """The stand-in, with the guide's project uploaded to its OSS folder."""
    oss_root = tmp_path_factory.mktemp("oss")
    folder = oss_root / "my-oss" / "eas" / "my-grpc-demo"
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "protos" / "helloworld.proto", folder)
    shutil.copy(SEED / "server.py", folder)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I.", "--python_out=.", "--grpc_python_out=.",
                    "helloworld.proto"], cwd=folder, check=True)
    with eas.local(oss_root) as running:
        yield running


def test_deploy_wait_call_update_delete(stand_in, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plane = stand_in.control_plane()
    config = eas.ServiceConfig.hello_world(oss_path=OSS)
    created = plane.deploy(config)
    assert created.name == "grpc_test" and created.status == "Creating" and not created.has_token
    status = plane.wait_until_running("grpc_test", timeout=60, progress=False, interval=0.2)
    assert status.is_running and status.running == status.total == 1 and status.has_token
    info = plane.call_info("grpc_test")
    assert info.grpc_public.startswith("127.0.0.1:") and info.token is not None
    secret = info.token.reveal()
    assert secret not in repr(status) + repr(info) + str(info) + repr(plane) + repr(stand_in)
    with info.connect() as conn:  # through the stand-in's gateway, with the token from DescribeService
        greeter = conn.service(easnb.protos.path("helloworld.proto"), "helloworld.GreeterService")
        assert greeter.SayHello(name="EAS").message == "Hello, EAS!"
    project = stand_in.oss_root / "my-oss" / "eas" / "my-grpc-demo"  # holds helloworld_pb2.py
    assert "Hello, World!" in seed_client(project, info.grpc_public, info.token.reveal())
    assert [s.name for s in plane.list_services()] == ["grpc_test"]
    assert "updated" in plane.update(replace(config, instance_count=2))
    status = plane.wait_until_running("grpc_test", timeout=60, progress=False, interval=0.2)
    assert status.total == 2
    assert "deleted" in plane.delete("grpc_test")
    with pytest.raises(eas.NoSuchServiceError) as info:
        plane.describe("grpc_test")
    assert "list_services" in info.value.hint


def test_control_plane_errors_are_typed_with_hints(stand_in, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    plane = stand_in.control_plane()
    config = eas.ServiceConfig.hello_world(oss_path=OSS, name="grpc_twice")
    plane.deploy(config)
    try:
        with pytest.raises(eas.NameTakenError) as info:
            plane.deploy(config)
        assert "already exists" in info.value.message and "update" in info.value.hint
    finally:
        plane.delete("grpc_twice")
    with pytest.raises(eas.NoSuchServiceError):
        plane.delete("never_made")
    with pytest.raises(eas.ConfigError):
        plane.deploy(replace(config, enable_grpc=False))  # checked before anything is sent
    for name in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_CREDENTIALS_FILE", "ALIBABA_CLOUD_ECS_METADATA",
                 "ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_CREDENTIALS_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(stand_in.oss_root))  # no credentials file there
    with pytest.raises(eas.CredentialsError) as info:
        eas.describe("grpc_test", endpoint=stand_in.endpoint)
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in info.value.hint and info.value.__context__ is None
    wrong_region = eas.ControlPlane("cn-nowhere", endpoint=stand_in.endpoint, credentials=stand_in.credentials())
    with pytest.raises(eas.RegionError):
        wrong_region.describe("grpc_test")


def test_credentials_from_the_environment_reach_the_sdk(stand_in, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", stand_in.access_key.id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", stand_in.access_key.secret)
    assert isinstance(eas.ControlPlane(endpoint=stand_in.endpoint).list_services(), list)
    assert stand_in.requests[-1].key_id == stand_in.access_key.id  # signed with the keys from the environment
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "not-the-secret")
    with pytest.raises(eas.CredentialsError, match="does not match our calculation") as info:
        eas.ControlPlane(endpoint=stand_in.endpoint).list_services()
    assert info.value.details == "SignatureDoesNotMatch"


def test_requests_match_the_documented_api(stand_in) -> None:  # type: ignore[no-untyped-def]
    """What the SDK sends, compared with the EAS API's documented routes, so the stand-in cannot drift."""
    plane = stand_in.control_plane()
    stand_in.requests.clear()
    config = eas.ServiceConfig.hello_world(oss_path=OSS, name="grpc_doc", workspace_id="12345")
    plane.deploy(config)
    plane.describe("grpc_doc")
    plane.update(config)
    plane.list_services()
    plane.delete("grpc_doc")
    documented = [
        ("CreateService", "POST", "/api/v2/services"),
        ("DescribeService", "GET", "/api/v2/services/cn-hangzhou/grpc_doc"),
        ("UpdateService", "PUT", "/api/v2/services/cn-hangzhou/grpc_doc"),
        ("ListServices", "GET", "/api/v2/services"),
        ("DeleteService", "DELETE", "/api/v2/services/cn-hangzhou/grpc_doc"),
    ]
    seen = [(r.action, r.method, r.path) for r in stand_in.requests]
    assert seen == documented
    create = stand_in.requests[0]
    assert create.body == json.loads(config.to_json()) and create.query["WorkspaceId"] == ["12345"]
    for request in stand_in.requests:
        assert {"authorization", "x-acs-action", "x-acs-version", "x-acs-date"} <= set(request.headers)


def test_eas_local_command(tmp_path: Path) -> None:
    from .conftest import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "easnb", "eas-local", "--port", str(port), "--oss-root", str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert f"127.0.0.1:{port}" in proc.stdout.readline()  # type: ignore[union-attr]
        proc.stdout.readline()  # type: ignore[union-attr]
        export = proc.stdout.readline().split()  # type: ignore[union-attr]
        pair = dict(word.split("=", 1) for word in export[1:])
        from easnb.eas.standin import credentials_for
        from easnb.eas.signature import AccessKey

        key = AccessKey(pair["ALIBABA_CLOUD_ACCESS_KEY_ID"], pair["ALIBABA_CLOUD_ACCESS_KEY_SECRET"])
        plane = eas.ControlPlane(endpoint=f"127.0.0.1:{port}", credentials=credentials_for(key))
        assert plane.list_services() == []
        with pytest.raises(eas.CredentialsError, match="access key is not found") as info:
            eas.ControlPlane(endpoint=f"127.0.0.1:{port}", credentials=credentials_for(AccessKey("LOCALOTHER", "x"))).list_services()
        assert info.value.details == "InvalidAccessKeyId.NotFound"
    finally:
        proc.terminate()
        proc.wait(10)


def test_grpc_endpoint_follows_the_console() -> None:
    assert eas.grpc_endpoint("http://123456.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/grpc_test") == \
        "grpc-test.123456.cn-hangzhou.pai-eas.aliyuncs.com:80"
    assert eas.grpc_endpoint("http://127.0.0.1:8123/") == "127.0.0.1:8123"
    assert eas.CallInfo("http://1.cn-shanghai.pai-eas.aliyuncs.com/api/predict/my_svc").grpc_public == \
        "my-svc.1.cn-shanghai.pai-eas.aliyuncs.com:80"


def test_module_level_functions_reach_the_same_control_plane(stand_in) -> None:  # type: ignore[no-untyped-def]
    where = {"endpoint": stand_in.endpoint, "credentials": stand_in.credentials()}
    config = eas.ServiceConfig.hello_world(oss_path=OSS, name="grpc_module")
    assert eas.deploy(config, **where).name == "grpc_module"
    assert eas.wait_until_running("grpc_module", timeout=60, progress=False, **where).is_running
    assert eas.describe("grpc_module", **where).has_token
    with eas.call_info("grpc_module", **where).connect() as conn:
        assert conn.service(easnb.protos.path("helloworld.proto"), "helloworld.GreeterService").SayHello(name="m").message == "Hello, m!"
    assert "updated" in eas.update(config, **where)
    assert "deleted" in eas.delete("grpc_module", **where)


def test_eas_local_prints_a_credentials_line_that_works(tmp_path: Path) -> None:
    """A newcomer pastes what ``easnb eas-local`` prints into another shell: the SDK call goes through."""
    import os
    import shlex

    from .conftest import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "easnb", "eas-local", "--port", str(port), "--oss-root", str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line.strip())
            if line.startswith("Press Ctrl-C"):
                break
        export = next(line for line in lines if line.startswith("export "))
        use = next(line for line in lines if line.startswith("use: "))[len("use: "):]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_ACCESS")}
        env.update(pair.split("=", 1) for pair in shlex.split(export)[1:])
        env["HOME"] = str(tmp_path)  # no credentials file to fall back on
        run = subprocess.run([sys.executable, "-c", f"import easnb.eas\nprint({use}.list_services())"],
                             capture_output=True, text=True, env=env, timeout=60)
        assert run.returncode == 0 and run.stdout.strip() == "[]", run.stderr[-2000:]
    finally:
        proc.terminate()
        proc.wait(10)
