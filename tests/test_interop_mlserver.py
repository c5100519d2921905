"""easnb against a real MLServer on 127.0.0.1, directly and behind easnb's gateway.

MLServer lives in its own venv (it pins protobuf 6): EASNB_MLSERVER_VENV, or
.cache/mlserver-venv, made here with `pip install mlserver` when missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import easnb
from easnb.demo import Gateway

from .conftest import free_port
from .seedparts import stop

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.mlserver


def mlserver_venv() -> Path:
    venv = Path(os.environ.get("EASNB_MLSERVER_VENV", ROOT / ".cache" / "mlserver-venv"))
    if (venv / "bin" / "mlserver").exists():
        return venv
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "mlserver"], check=True, timeout=900,
                       capture_output=True)
    except (subprocess.SubprocessError, OSError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"MLServer could not be installed here: {exc}")
    return venv


@contextlib.contextmanager
def serving(folder: Path, model_dir: str, name: str) -> Iterator[str]:
    """MLServer (its own venv) on 127.0.0.1 serving ``tests/<model_dir>`` as ``name``; yields its gRPC endpoint."""
    venv = mlserver_venv()
    shutil.copytree(ROOT / "tests" / model_dir, folder / name)
    grpc_port, http_port = free_port(), free_port()
    (folder / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port,
        "metrics_endpoint": None, "parallel_workers": 0, "debug": False,
    }))
    log = open(folder / "mlserver.log", "w")
    proc = subprocess.Popen([str(venv / "bin" / "mlserver"), "start", str(folder)], cwd=folder,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"127.0.0.1:{grpc_port}"
    try:
        deadline = time.monotonic() + 90
        with easnb.connect(endpoint, timeout=2, retries=0) as conn:
            while True:
                try:
                    if conn.model_ready(name):
                        break
                except easnb.EasnbError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("MLServer did not start:\n" + (folder / "mlserver.log").read_text()[-3000:])
                time.sleep(0.5)
        yield endpoint
    finally:
        stop(proc, timeout=20)
        log.close()


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(tmp_path_factory.mktemp("mlserver"), "mlserver_model", "echo") as endpoint:
        yield endpoint

CASES = {
    "FP32": np.array([[1.5, -2.0, 3.25]], np.float32),
    "INT64": np.array([[2**40, -7]], np.int64),
    "BOOL": np.array([[True, False, True]]),
    "BYTES": np.array([[b"hello", b"w\xc3\xb6rld"]], dtype=object),
}


def test_metadata_from_mlserver(mlserver: str) -> None:
    with easnb.connect(mlserver) as conn:
        assert conn.live() and conn.ready()
        assert conn.server_metadata().name.lower() == "mlserver"
        assert conn.model_metadata("echo").name == "echo"
        with pytest.raises(easnb.NotFoundError):
            conn.model_metadata("nope")
        assert conn.model_ready("nope") is False  # the same answer as Triton's and KServe's


def test_model_list_and_discovery_from_mlserver(mlserver: str) -> None:
    with easnb.connect(mlserver) as conn:
        models = conn.models()  # MLServer's inference.model_repository.ModelRepositoryService
        assert [(m.name, m.state) for m in models] == [("echo", "READY")]
        assert conn.known_models() == ["echo"]
        found = conn.discover()
        assert found.v2 and found.ready and found.server.name.lower() == "mlserver"
        from easnb.inspectors import ModelInspector

        assert ModelInspector(conn).model_field.options == ("echo",)
        assert conn.wait_until_ready("echo", timeout=10, progress=False) == "model echo ready"


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
@pytest.mark.parametrize("datatype", list(CASES))
def test_round_trip_through_mlserver(mlserver: str, datatype: str, raw: bool) -> None:
    with easnb.connect(mlserver) as conn:
        result = conn.infer("echo", {"x": CASES[datatype]}, raw=raw)
    assert result.datatypes["x"] == datatype
    assert result["x"].tolist() == CASES[datatype].tolist()
    if datatype == "FP32":
        np.testing.assert_array_equal(result["x_doubled"], CASES["FP32"] * 2)


def test_mlserver_behind_easnb_gateway(mlserver: str) -> None:
    with Gateway(mlserver, token="gw-token-123") as gateway:
        with easnb.connect(gateway.endpoint, token="gw-token-123") as conn:
            assert conn.live()
            out = conn.infer("echo", {"x": CASES["FP32"]})
            np.testing.assert_array_equal(out["x_doubled"], CASES["FP32"] * 2)
        with easnb.connect(gateway.endpoint, token="wrong") as conn:
            with pytest.raises(easnb.AuthenticationError):
                conn.infer("echo", {"x": CASES["FP32"]})


def easnb_in(venv: Path) -> Path:
    """The MLServer venv's python, with easnb installed beside MLServer (no extra deps)."""
    python = venv / "bin" / "python"
    check = subprocess.run([str(python), "-c", "import easnb"], capture_output=True, cwd="/")
    if check.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(ROOT)], check=True)
    return python


@pytest.mark.parametrize("order", ["import easnb, mlserver.grpc", "import mlserver.grpc, easnb"])
def test_import_orders_with_mlserver(order: str) -> None:
    python = easnb_in(mlserver_venv())
    run = subprocess.run([str(python), "-c", order + "; print('ok')"], capture_output=True, text=True, cwd="/")
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


def test_mlserver_stubs_and_easnb_call_the_demo_in_one_process(demo) -> None:  # type: ignore[no-untyped-def]
    python = easnb_in(mlserver_venv())
    code = f"""
import easnb, grpc
from mlserver.grpc import dataplane_pb2 as pb, dataplane_pb2_grpc as pbg
stub = pbg.GRPCInferenceServiceStub(grpc.insecure_channel({demo.endpoint!r}))
md = (("authorization", "Bearer " + {demo.token!r}),)
print(stub.ServerLive(pb.ServerLiveRequest(), metadata=md).live)
conn = easnb.connect({demo.endpoint!r}, token={demo.token!r})
print(conn.model_metadata("iris").inputs[0].name)
"""
    run = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd="/")
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["True", "features"]
