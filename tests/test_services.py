import subprocess
import sys
from pathlib import Path

import pytest

import easnb
from easnb.demo import DemoServer

pytestmark = pytest.mark.core

ROOT = Path(__file__).resolve().parents[1]
PROTO = ROOT / "protos" / "helloworld.proto"


def test_greeter_with_keyword_fields_dict_or_message(conn: easnb.Connection) -> None:
    greeter = conn.service(PROTO, "helloworld.GreeterService")
    assert greeter.SayHello(name="World").message == "Hello, World!"
    assert greeter.SayHello({"name": "dict"}).message == "Hello, dict!"
    request = greeter.SayHello.request_class(name="msg")
    assert greeter.SayHello(request).message == "Hello, msg!"
    assert "SayHello" in dir(greeter) and "helloworld.GreeterService" in repr(greeter)
    assert greeter.SayHello(name="t", timeout=None).message == "Hello, t!"  # None: no deadline, as in Connection


def test_service_errors_are_typed(demo: DemoServer, conn: easnb.Connection) -> None:
    with pytest.raises(easnb.NotFoundError, match="Services there: helloworld.GreeterService"):
        conn.service(PROTO, "GreeterService")
    greeter = conn.service(PROTO, "helloworld.GreeterService")
    with pytest.raises(AttributeError, match="Methods: SayHello"):
        greeter.SayGoodbye
    with pytest.raises(easnb.RequestError, match="no field 'nmae' \\(did you mean 'name'\\?\\)") as typo:
        greeter.SayHello(nmae="typo")
    assert typo.value.field == "nmae" and "name (string)" in typo.value.hint
    with easnb.connect(demo.endpoint, token="bad") as wrong:
        with pytest.raises(easnb.AuthenticationError):
            wrong.service(PROTO, "helloworld.GreeterService").SayHello(name="x")
    with pytest.raises(easnb.EasnbError, match="No .proto file"):
        conn.service("missing.proto", "x.Y")


def test_loading_twice_and_after_users_own_stubs(demo: DemoServer, tmp_path: Path) -> None:
    """A user's protoc-generated helloworld_pb2 and easnb's loader live side by side."""
    (tmp_path / "helloworld.proto").write_text(PROTO.read_text())
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I.", "--python_out=.", "--grpc_python_out=.", "helloworld.proto"],
        cwd=tmp_path, check=True,
    )
    code = f"""
import helloworld_pb2, helloworld_pb2_grpc, easnb
conn = easnb.connect({demo.endpoint!r}, token={demo.token!r})
a = conn.service("helloworld.proto", "helloworld.GreeterService")
b = conn.service("helloworld.proto", "helloworld.GreeterService")
print(a.SayHello(name="A").message, b.SayHello(name="B").message)
import grpc
stub = helloworld_pb2_grpc.GreeterServiceStub(grpc.insecure_channel({demo.endpoint!r}))
print(stub.SayHello(helloworld_pb2.HelloRequest(name="C"), metadata=(("authorization", "Bearer " + {demo.token!r}),)).message)
"""
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:2] == ["Hello, A! Hello, B!", "Hello, C!"]
