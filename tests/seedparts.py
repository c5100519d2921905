"""The EAS guide's unchanged server.py behind ``python -m easnb gateway``, each in its own process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "tests" / "seed"


def start(args: list[str], cwd: Path, ready: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 30
    for line in proc.stdout:  # type: ignore[union-attr]
        if ready in line:
            return proc
        if time.monotonic() > deadline:
            break
    stop(proc)
    raise AssertionError(f"{args} did not print {ready!r}")


def stop(proc: subprocess.Popen[str], timeout: float = 10) -> None:
    """Stop a process started in its own session, and everything it started; killed if it lingers."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def seed_behind_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """The seed's server.py (unchanged, on loopback) and `python -m easnb gateway` in front, as processes."""
    work = tmp_path_factory.mktemp("my-grpc-demo")
    shutil.copy(ROOT / "protos" / "helloworld.proto", work)
    shutil.copy(SEED / "server.py", work)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I.", "--python_out=.", "--grpc_python_out=.",
                    "helloworld.proto"], cwd=work, check=True)
    backend = f"127.0.0.1:{free_port()}"
    server = start([sys.executable, "-m", "easnb.demo.launch", "server.py", backend], work, "Server started")
    port = free_port()
    gateway = start([sys.executable, "-m", "easnb", "gateway", "--port", str(port), "--backend", backend],
                    work, "Ctrl-C", env={"EASNB_TOKEN": "seed-token-42"})
    try:
        yield f"127.0.0.1:{port}", "seed-token-42", work
    finally:
        stop(gateway)
        stop(server)


def seed_client(work: Path, host: str, token: str) -> str:
    code = (SEED / "client.py").read_text()
    code = code.replace('host = "your-service-endpoint:your port"', f"host = {host!r}")
    code = code.replace('token = "your-service-token"', f"token = {token!r}")
    run = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    return run.stdout
