"""A real decoupled model on NVIDIA Triton (PyTriton's ``tritonserver``) on 127.0.0.1, for tests and bench/stream.py.

    python bench/stream_server.py        # start it (venv made once), print the endpoint, wait for Ctrl-C

The model ``gen`` follows Triton's vLLM conventions: ``text_input`` (BYTES [1]) and optional
``sampling_parameters`` (a JSON string: ``max_tokens``, default 16, and ``delay_ms`` between
tokens, default 0) give ``text_output`` (the new text of each response) and ``finish_reason``.
It answers ``" You said: <prompt>."`` one word per response; a prompt containing ``fail`` fails
after two tokens; ``max_tokens: 0`` gives no response. PyTriton ends every request with a
flags-only final response. The server process runs in its own process group and is stopped
with SIGINT; what PyTriton leaves in ``/tmp/folder*`` is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from triton import _free_port, ensure_venv, library_path  # noqa: E402  (bench/triton.py)

MODEL = "gen"


def serve(grpc_port: int, http_port: int, metrics_port: int, workspace: str, verbose: int) -> None:  # in the PyTriton venv
    import numpy as np
    from pytriton.model_config import ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    def infer(requests):  # type: ignore[no-untyped-def]
        request = requests[0]
        prompt = bytes(request["text_input"].reshape(-1)[0]).decode("utf-8", "replace")
        sampling = {}
        if "sampling_parameters" in request:
            sampling = json.loads(bytes(request["sampling_parameters"].reshape(-1)[0]) or b"{}")
        words = f" You said: {' '.join(prompt.split())}.".split(" ")[1:]
        tokens = [" " + w for w in words][: int(sampling.get("max_tokens", 16))]
        delay = float(sampling.get("delay_ms", 0)) / 1000
        for i, token in enumerate(tokens):
            if "fail" in prompt and i == 2:
                raise ValueError("gen failed on purpose after 2 tokens (the prompt says 'fail')")
            if delay:
                time.sleep(delay)
            finish = ("stop" if len(tokens) == len(words) else "length") if i == len(tokens) - 1 else ""
            yield [{"text_output": np.array([token.encode()], dtype=np.bytes_),
                    "finish_reason": np.array([finish.encode()], dtype=np.bytes_)}]

    config = TritonConfig(grpc_address="127.0.0.1", grpc_port=grpc_port, http_address="127.0.0.1", http_port=http_port,
                          metrics_address="127.0.0.1", metrics_port=metrics_port, allow_metrics=False,
                          log_verbose=verbose, exit_on_error=True, exit_timeout_secs=3)
    with Triton(config=config, workspace=workspace) as triton:
        triton.bind(
            model_name=MODEL,
            infer_func=[infer] * 2,  # two instances: requests on one stream run at once, their responses interleave
            inputs=[Tensor(name="text_input", dtype=np.bytes_, shape=(1,)),
                    Tensor(name="sampling_parameters", dtype=np.bytes_, shape=(1,), optional=True)],
            outputs=[Tensor(name="text_output", dtype=np.bytes_, shape=(1,)),
                     Tensor(name="finish_reason", dtype=np.bytes_, shape=(1,))],
            config=ModelConfig(decoupled=True, batching=False),
            strict=False,
        )
        triton.serve()


def _python(venv: Path) -> str:
    return str(venv / "bin" / "python")


def _stop(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for region in Path("/dev/shm").glob(f"pytrtion{proc.pid}-*"):  # the Python backend's shared memory, if left
        region.unlink(missing_ok=True)


def _start(venv: Path, work: Path, timeout: float, verbose: int) -> tuple[subprocess.Popen, str, Path]:  # type: ignore[type-arg]
    """One try: the server process, its endpoint and log; ``RuntimeError`` when it does not become ready."""
    import easnb

    ports = [_free_port() for _ in range(3)]
    log_path = work / f"server-{ports[0]}.log"
    env = {**os.environ, "LD_LIBRARY_PATH": library_path(venv) + os.pathsep + os.environ.get("LD_LIBRARY_PATH", ""),
           "PYTHONPATH": ""}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([_python(venv), __file__, "--serve", *map(str, ports), str(work / f"workspace-{ports[0]}"), str(verbose)],
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    endpoint = f"127.0.0.1:{ports[0]}"
    with easnb.connect(endpoint, timeout=2, retries=0) as conn:
        ends = time.monotonic() + timeout
        while True:
            problem = "exited" if proc.poll() is not None else "did not become ready" if time.monotonic() > ends else ""
            if problem:
                _stop(proc)
                raise RuntimeError(f"PyTriton {problem}:\n" + log_path.read_text()[-3000:])
            try:
                if conn.model_ready(MODEL):
                    return proc, endpoint, log_path
            except easnb.EasnbError:
                pass
            time.sleep(0.3)


@contextlib.contextmanager
def stream_server(timeout: float = 120, tries: int = 3, verbose: int = 0) -> Iterator[tuple[str, Path]]:
    """Start the decoupled model on loopback; yield ``(endpoint, tritonserver log)``; stop and clean up after.

    ``verbose=1`` makes tritonserver log each stream's events (cancellations too), at a cost per response.

    PyTriton gives its model's processes one second to find each other, which a loaded machine can
    miss: a start that fails is tried again, up to ``tries`` times.
    """
    venv = ensure_venv()
    before = set(Path(tempfile.gettempdir()).glob("folder*")) | set(Path("/tmp").glob("folder*"))
    shared = set(Path("/dev/shm").glob("psm_*"))
    work = Path(tempfile.mkdtemp(prefix="easnb-pytriton-"))
    proc = None
    try:
        for attempt in range(tries):
            try:
                proc, endpoint, log_path = _start(venv, work, timeout, verbose)
                break
            except RuntimeError:
                if attempt == tries - 1:
                    raise
        yield endpoint, log_path
    finally:
        if proc is not None:
            _stop(proc)
        after = set(Path(tempfile.gettempdir()).glob("folder*")) | set(Path("/tmp").glob("folder*"))
        for left in after - before:
            shutil.rmtree(left, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        _unlink_unmapped(set(Path("/dev/shm").glob("psm_*")) - shared)


def _unlink_unmapped(regions: set[Path]) -> None:
    """Remove the shared memory PyTriton's processes left behind, unless a live process still maps it."""
    if not regions:
        return
    mapped = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        with contextlib.suppress(OSError):
            mapped.update(line.rsplit(" ", 1)[-1].strip() for line in maps.read_text().splitlines() if "/dev/shm/" in line)
    for region in regions:
        if str(region) not in mapped:
            region.unlink(missing_ok=True)


def main() -> int:
    if sys.argv[1:2] == ["--serve"]:
        grpc_port, http_port, metrics_port, workspace, verbose = sys.argv[2:7]
        serve(int(grpc_port), int(http_port), int(metrics_port), workspace, int(verbose))
        return 0
    with stream_server() as (endpoint, _):
        print(f"PyTriton's tritonserver ready on {endpoint} (decoupled model {MODEL!r}); Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
