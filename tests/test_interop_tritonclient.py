"""easnb beside tritonclient, a real V2 client no one here wrote."""

import subprocess
import sys

import numpy as np
import pytest

from easnb.demo import DemoServer

grpcclient = pytest.importorskip("tritonclient.grpc")


@pytest.mark.parametrize(
    "code",
    ["import easnb, tritonclient.grpc", "import tritonclient.grpc, easnb", "import easnb.demo, tritonclient.grpc.aio"],
)
def test_import_orders(code: str) -> None:
    run = subprocess.run([sys.executable, "-c", code + "; print('ok')"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def _triton(demo: DemoServer):  # type: ignore[no-untyped-def]
    return grpcclient.InferenceServerClient(demo.endpoint), {"authorization": f"Bearer {demo.token}"}


def test_tritonclient_against_the_demo(demo: DemoServer) -> None:
    client, headers = _triton(demo)
    assert client.is_server_live(headers=headers) and client.is_server_ready(headers=headers)
    assert client.is_model_ready("iris", headers=headers)
    assert client.get_server_metadata(headers=headers).name == "easnb-demo"
    assert [i.name for i in client.get_model_metadata("add_sub", headers=headers).inputs] == ["INPUT0", "INPUT1"]
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    inputs = [grpcclient.InferInput(n, [1, 16], "INT32") for n in ("INPUT0", "INPUT1")]
    for i in inputs:
        i.set_data_from_numpy(a)
    result = client.infer("add_sub", inputs, headers=headers)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * a)
    features = grpcclient.InferInput("features", [1, 4], "FP32")
    features.set_data_from_numpy(np.array([[6.7, 3.0, 5.2, 2.3]], np.float32))
    assert client.infer("iris", [features], headers=headers).as_numpy("label")[0] == b"virginica"
    text = grpcclient.InferInput("TEXT", [2], "BYTES")
    text.set_data_from_numpy(np.array([b"ab", b"xyz"], dtype=object))
    result = client.infer("text", [text], headers=headers)
    assert result.as_numpy("UPPER").tolist() == [b"AB", b"XYZ"] and result.as_numpy("LENGTH").tolist() == [2, 3]


def test_tritonclient_wrong_token_is_refused(demo: DemoServer) -> None:
    client, _ = _triton(demo)
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="UNAUTHENTICATED|authorization"):
        client.is_server_live(headers={"authorization": "Bearer nope"})


def test_both_clients_in_one_process(demo: DemoServer) -> None:
    import easnb

    client, headers = _triton(demo)
    with easnb.connect(demo.endpoint, token=demo.token) as conn:
        x = np.array([[1.0, 2.0]], np.float32)
        ours = conn.infer("echo", {"x": x})["x"]
        tx = grpcclient.InferInput("x", [1, 2], "FP32")
        tx.set_data_from_numpy(x)
        theirs = client.infer("echo", [tx], headers=headers).as_numpy("x")
    np.testing.assert_array_equal(ours, theirs)


ALL_TYPES = {
    "BOOL": np.array([[True, False]]),
    "UINT8": np.array([[0, 255]], np.uint8),
    "UINT16": np.array([[0, 65535]], np.uint16),
    "UINT32": np.array([[0, 2**32 - 1]], np.uint32),
    "UINT64": np.array([[0, 2**64 - 1]], np.uint64),
    "INT8": np.array([[-128, 127]], np.int8),
    "INT16": np.array([[-(2**15), 2**15 - 1]], np.int16),
    "INT32": np.array([[-(2**31), 2**31 - 1]], np.int32),
    "INT64": np.array([[-(2**63), 2**63 - 1]], np.int64),
    "FP16": np.array([[0.5, -65504]], np.float16),
    "FP32": np.array([[1.5, -np.inf]], np.float32),
    "FP64": np.array([[np.pi, 1e300]]),
    "BYTES": np.array([[b"a\x00", b""]], dtype=object),
}


@pytest.mark.parametrize("datatype", list(ALL_TYPES))
def test_tritonclient_echo_every_datatype(demo: DemoServer, datatype: str) -> None:
    client, headers = _triton(demo)
    value = ALL_TYPES[datatype]
    tensor = grpcclient.InferInput("x", list(value.shape), datatype)
    tensor.set_data_from_numpy(value)
    back = client.infer("echo", [tensor], headers=headers).as_numpy("x")
    assert back.tolist() == value.tolist()


@pytest.mark.parametrize("datatype", list(ALL_TYPES))
def test_codecs_read_each_other(datatype: str) -> None:
    """tritonclient's request read by easnb, and easnb's reply read by tritonclient."""
    from tritonclient.grpc import _utils, service_pb2

    from easnb._proto import ModelInferResponse
    from easnb.inference import decode_request
    from easnb.tensors import decode_tensor, encode_tensor

    value = ALL_TYPES[datatype]
    tensor = grpcclient.InferInput("x", list(value.shape), datatype)
    tensor.set_data_from_numpy(value)
    theirs = _utils._get_inference_request(
        model_name="m", inputs=[tensor], model_version="", request_id="", outputs=None, sequence_id=0,
        sequence_start=False, sequence_end=False, priority=0, timeout=None, parameters=None,
    ).SerializeToString()
    message, raws = decode_request(theirs)
    t = message.inputs[0]
    assert decode_tensor(t.name, t.datatype, t.shape, raws[0]).tolist() == value.tolist()
    reply = ModelInferResponse(model_name="m")
    buffer, _ = encode_tensor(reply.outputs.add(), "y", value)
    reply.raw_output_contents.append(memoryview(buffer).tobytes())
    parsed = service_pb2.ModelInferResponse.FromString(reply.SerializeToString())
    assert grpcclient.InferResult(parsed).as_numpy("y").tolist() == value.tolist()
