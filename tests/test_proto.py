import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pool

from easnb import _proto

ROOT = Path(__file__).resolve().parents[1]


def test_committed_descriptors_are_fresh() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/generate_protos.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_messages_live_in_a_private_pool() -> None:
    assert _proto.ModelInferRequest.DESCRIPTOR.full_name == "inference.ModelInferRequest"
    assert _proto.ModelInferRequest.DESCRIPTOR.file.pool is not descriptor_pool.Default()
    # a fresh interpreter: other tests import tritonclient, which fills the default pool
    code = (
        "import easnb, easnb.demo; from google.protobuf import descriptor_pool as p\n"
        "for name in ('inference.ModelInferRequest', 'helloworld.HelloRequest'):\n"
        "    try: p.Default().FindMessageTypeByName(name); print('registered', name)\n"
        "    except KeyError: pass\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout == "", run.stdout + run.stderr


def test_standard_field_numbers() -> None:
    fields = {f.name: f.number for f in _proto.ModelInferRequest.DESCRIPTOR.fields}
    assert fields == {"model_name": 1, "model_version": 2, "id": 3, "parameters": 4, "inputs": 5, "outputs": 6, "raw_input_contents": 7}
    fields = {f.name: f.number for f in _proto.ModelInferResponse.DESCRIPTOR.fields}
    assert fields["raw_output_contents"] == 6 and fields["outputs"] == 5
    contents = [f.name for f in _proto.InferTensorContents.DESCRIPTOR.fields]
    assert contents == ["bool_contents", "int_contents", "int64_contents", "uint_contents", "uint64_contents",
                        "fp32_contents", "fp64_contents", "bytes_contents"]
    methods = [m.name for m in _proto.POOL.FindServiceByName("inference.GRPCInferenceService").methods]
    assert methods == ["ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer"]


@pytest.mark.network  # installs each protobuf major from the package index
@pytest.mark.parametrize("protobuf", ["protobuf==5.29.*", "protobuf==6.33.*", "protobuf==7.*"])
def test_imports_with_each_protobuf_major(protobuf: str, tmp_path: Path) -> None:
    """easnb's messages build on protobuf 5, 6 and 7 (installed alone into a side folder)."""
    target = tmp_path / "pb"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), protobuf],
        capture_output=True, text=True,
    )
    if install.returncode != 0:
        pytest.skip(f"could not install {protobuf}: {install.stderr[-300:]}")
    code = (
        "import google.protobuf, easnb, numpy as np; from easnb import _proto; "
        "from easnb.inference import encode_request, decode_request; "
        "m, raws = decode_request(encode_request('m', {'x': np.arange(3.0)})); "
        "assert m.inputs[0].datatype == 'FP64' and raws[0].nbytes == 24; "
        "print(google.protobuf.__version__)"
    )
    env = {"PYTHONPATH": f"{target}:{ROOT}", "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().split(".")[0] == protobuf.split("==")[1][0]
