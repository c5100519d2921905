import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from easnb.demo import DemoServer

from .conftest import free_port

pytestmark = pytest.mark.core


def run(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EASNB_TOKEN", "EASNB_ENDPOINT")}
    if token:
        env["EASNB_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "easnb", *args], capture_output=True, text=True, env=env, timeout=60)


def test_ping(demo: DemoServer) -> None:
    result = run("ping", demo.endpoint, token=demo.token)
    assert result.returncode == 0, result.stderr
    assert "live: True" in result.stdout and "ready: True" in result.stdout and "easnb-demo" in result.stdout
    assert demo.token not in result.stdout + result.stderr


def test_ping_with_token_flag_and_wrong_token(demo: DemoServer) -> None:
    assert run("ping", demo.endpoint, "--token", demo.token).returncode == 0
    result = run("ping", demo.endpoint, "--token", "wrong-token-abc")
    assert result.returncode == 1
    assert "UNAUTHENTICATED" in result.stderr and "Hint:" in result.stderr and "Traceback" not in result.stderr
    assert "wrong-token-abc" not in result.stderr


def test_metadata_and_infer(demo: DemoServer) -> None:
    result = run("metadata", demo.endpoint, "iris", token=demo.token)
    assert result.returncode == 0, result.stderr
    assert "features" in result.stdout and "[-1, 4]" in result.stdout
    result = run("infer", demo.endpoint, "text", "--inputs", '{"TEXT": ["hello"]}', token=demo.token)
    assert result.returncode == 0, result.stderr
    assert "HELLO" in result.stdout


def test_bad_endpoint_is_a_clear_error() -> None:
    result = run("ping", "http://user:pw@host/")
    assert result.returncode == 1 and "EndpointError" not in result.stderr and "user name" in result.stderr


def banner_of(proc: subprocess.Popen[str]) -> list[str]:
    banner: list[str] = []
    while not banner or "Ctrl-C" not in banner[-1]:
        banner.append(proc.stdout.readline())  # type: ignore[union-attr]
    return banner


def test_demo_command_prints_the_token_it_made_and_stops_on_ctrl_c() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "EASNB_TOKEN"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "easnb", "demo", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env,
    )
    try:
        banner = banner_of(proc)
        assert f"127.0.0.1:{port}" in banner[0]
        token = next(line.split()[-1] for line in banner if line.strip().startswith("token:"))
        assert run("ping", f"127.0.0.1:{port}", token=token).returncode == 0
        # the banner's "try:" line works pasted into a shell as it stands (it said EASNB_TOKEN=<token>,
        # a redirection from a file named "token", and `python`, which may be a Python without easnb)
        line = next(line for line in banner if line.strip().startswith("try:")).split("try:", 1)[1]
        tried = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=60, env=env)
        assert tried.returncode == 0 and "live: True" in tried.stdout, tried.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
    assert proc.returncode == 0


@pytest.mark.parametrize("source", ["env", "file", "argv"])
def test_demo_token_from_env_or_file_stays_out_of_argv_and_output(source: str, tmp_path: Path) -> None:
    port, secret = free_port(), "cli-secret-token-77"
    args = [sys.executable, "-m", "easnb", "demo", "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if k != "EASNB_TOKEN"}
    if source == "env":
        env["EASNB_TOKEN"] = secret
    elif source == "file":
        (tmp_path / "token").write_text(secret + "\n")
        args += ["--token-file", str(tmp_path / "token")]
    else:
        args += ["--token", secret]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        banner = banner_of(proc)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
        assert (secret in cmdline) == (source == "argv")
        assert not any(secret in line for line in banner)
        assert run("ping", f"127.0.0.1:{port}", token=secret).returncode == 0
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    assert ("warning: --token" in err) == (source == "argv")


@pytest.mark.parametrize("args", [["demo"], ["gateway", "--backend", "127.0.0.1:1"]])
def test_servers_bind_loopback_by_default(args: list[str]) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "easnb", *args, "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert f"127.0.0.1:{port}" in proc.stdout.readline()  # type: ignore[union-attr]
        time.sleep(0.2)
        ss = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
        listening = [l for l in ss.splitlines() if f":{port} " in l]
        assert listening and all("127.0.0.1" in l for l in listening), listening
    finally:
        proc.terminate()
        proc.wait(timeout=15)
