"""NVIDIA Triton's C++ server on 127.0.0.1 with a minimal identity backend: a fast server for benchmarks.

    python bench/triton.py            # set up (once), start, print the endpoint, wait for Ctrl-C

The ``tritonserver`` binary comes from the ``nvidia-pytriton`` wheel, installed in its own venv
(``.cache/pytriton-venv``); the backend is ``bench/identity_backend.c``, built with the system
compiler: every ``INPUTn`` comes back as ``OUTPUTn``. Models: ``identity_fp32`` (FP32 ``[-1, -1]``)
and ``identity_bytes`` (BYTES ``[-1]``). PyTriton's own Python models cost ~1.9 ms a call, which would
hide the clients' costs; this one costs microseconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
VENV = Path(os.environ.get("EASNB_PYTRITON_VENV", CACHE / "pytriton-venv"))
WORK = CACHE / "triton"
MODELS = {
    "identity_fp32": ("TYPE_FP32", "[ -1, -1 ]"),
    "identity_bytes": ("TYPE_STRING", "[ -1 ]"),
}


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv() -> Path:
    """The venv holding nvidia-pytriton (and so the tritonserver binary), made once."""
    if not _python(VENV).exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    found = subprocess.run([str(_python(VENV)), "-c", "import pytriton, os; print(os.path.dirname(pytriton.__file__))"],
                           capture_output=True, text=True)
    if found.returncode != 0:
        subprocess.run([str(_python(VENV)), "-m", "pip", "install", "--quiet", "nvidia-pytriton"], check=True)
    return VENV


def server_binary(venv: Path) -> Path:
    package = subprocess.run([str(_python(venv)), "-c", "import pytriton, os; print(os.path.dirname(pytriton.__file__))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    return Path(package) / "tritonserver" / "bin" / "tritonserver"


def library_path(venv: Path) -> str:
    """The venv Python's LIBDIR (libpython), which the tritonserver in the wheel needs at load time."""
    return subprocess.run([str(_python(venv)), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
                          capture_output=True, text=True, check=True).stdout.strip()


def compiled(source: str, target: Path, *flags: str) -> Path:
    """``bench/<source>`` built with the system compiler (``$CC``) into ``target``, again when the C file changes."""
    path = ROOT / "bench" / source
    if not target.exists() or target.stat().st_mtime < path.stat().st_mtime:
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([os.environ.get("CC", "cc"), "-O2", *flags, "-o", str(target), str(path)], check=True)
    return target


def build_backend() -> Path:
    """``libtriton_easnb_identity.so`` in a backends folder."""
    target = WORK / "backends" / "easnb_identity" / "libtriton_easnb_identity.so"
    return compiled("identity_backend.c", target, "-shared", "-fPIC").parent.parent


def model_repository() -> Path:
    repository = WORK / "models"
    for name, (datatype, dims) in MODELS.items():
        folder = repository / name / "1"
        folder.mkdir(parents=True, exist_ok=True)
        (repository / name / "config.pbtxt").write_text(
            f'name: "{name}"\nbackend: "easnb_identity"\nmax_batch_size: 0\n'
            f'input [ {{ name: "INPUT0" data_type: {datatype} dims: {dims} }} ]\n'
            f'output [ {{ name: "OUTPUT0" data_type: {datatype} dims: {dims} }} ]\n'
            'instance_group [ { kind: KIND_CPU count: 2 } ]\n'
        )
    return repository


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def triton_server(timeout: float = 120) -> Iterator[str]:
    """Start tritonserver on loopback (gRPC only) and yield its endpoint; stop it afterwards."""
    import easnb

    venv = ensure_venv()
    port = _free_port()
    backends, repository = build_backend(), model_repository()
    log = open(WORK / "tritonserver.log", "w")
    env = {**os.environ, "LD_LIBRARY_PATH": library_path(venv) + os.pathsep + os.environ.get("LD_LIBRARY_PATH", "")}
    proc = subprocess.Popen(
        [str(server_binary(venv)), f"--model-repository={repository}", f"--backend-directory={backends}",
         "--grpc-address=127.0.0.1", f"--grpc-port={port}", "--allow-http=false", "--allow-metrics=false",
         "--log-verbose=0", "--strict-readiness=true"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    endpoint = f"127.0.0.1:{port}"
    try:
        with easnb.connect(endpoint, timeout=2, retries=0) as conn:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError("tritonserver exited:\n" + (WORK / "tritonserver.log").read_text()[-3000:])
                try:
                    if all(conn.model_ready(name) for name in MODELS):
                        break
                except easnb.EasnbError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("tritonserver did not become ready:\n" + (WORK / "tritonserver.log").read_text()[-3000:])
                time.sleep(0.3)
        yield endpoint
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def main() -> int:
    with triton_server() as endpoint:
        print(f"tritonserver ready on {endpoint} (models: {', '.join(MODELS)}); Ctrl-C stops it", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
