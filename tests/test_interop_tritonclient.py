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


# -- streaming: tritonclient's stream API is the reference the demo's decoupled model must satisfy ---------

def _prompt(text: str) -> list:  # type: ignore[type-arg]
    prompt = grpcclient.InferInput("text_input", [1], "BYTES")
    prompt.set_data_from_numpy(np.array([text.encode()], dtype=object))
    stream = grpcclient.InferInput("stream", [1], "BOOL")
    stream.set_data_from_numpy(np.array([True]))
    return [prompt, stream]


def _read_stream(demo: DemoServer, requests: dict[str, str], **headers: str) -> list:  # type: ignore[type-arg]
    """tritonclient's start_stream + async_stream_infer(enable_empty_final_response=True): (id, text, final, error)."""
    import queue

    client, auth = _triton(demo)
    seen: queue.Queue = queue.Queue()  # type: ignore[type-arg]
    client.start_stream(callback=lambda result, error: seen.put((result, error)), headers={**auth, **headers})
    for request_id, text in requests.items():
        client.async_stream_infer("textgen", _prompt(text), request_id=request_id, enable_empty_final_response=True)
    events, open_requests = [], set(requests)
    while open_requests:
        result, error = seen.get(timeout=10)
        if error is not None:
            events.append((None, None, None, str(error)))
            if headers:  # with triton_grpc_error the stream is over
                break
            open_requests.discard("bad")  # tritonclient drops the error's id: the test knows which one fails
            continue
        response = result.get_response()
        final = response.parameters["triton_final_response"].bool_param
        text = result.as_numpy("text_output")
        events.append((response.id, text[0].decode() if text is not None else None, final, None))
        if final:
            open_requests.discard(response.id)
    client.stop_stream()
    return events


def test_tritonclient_streams_from_the_demo(demo: DemoServer) -> None:
    events = _read_stream(demo, {"a": "one two", "b": "three"})
    for request_id, expected in (("a", [" You", " said:", " one", " two."]), ("b", [" You", " said:", " three."])):
        mine = [e for e in events if e[0] == request_id]
        assert [e[1] for e in mine[:-1]] == expected and not any(e[2] for e in mine[:-1])
        assert mine[-1][1:] == (None, True, None)  # the empty final response tritonclient asked for


def test_tritonclient_sees_the_demos_stream_errors(demo: DemoServer) -> None:
    events = _read_stream(demo, {"bad": "fail now", "good": "fine"})
    errors = [e for e in events if e[3] is not None]
    assert len(errors) == 1 and "failed on purpose" in errors[0][3]  # tritonclient keeps neither its id nor its flag
    assert [e[1] for e in events if e[0] == "good"][-2:] == [" fine.", None]
    with_status = _read_stream(demo, {"bad": "fail now"}, triton_grpc_error="true")
    assert "failed on purpose" in with_status[-1][3]


def test_tritonclient_unary_infer_on_the_decoupled_model(demo: DemoServer) -> None:
    from tritonclient.utils import InferenceServerException

    client, headers = _triton(demo)
    with pytest.raises(InferenceServerException, match="decoupled transaction policy"):
        client.infer("textgen", _prompt("hi"), headers=headers)
