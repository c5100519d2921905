"""``easnb load`` and ``easnb compare`` against the demo, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from easnb.demo import DemoServer
from easnb.demo.models import IRIS_FEATURES, load_iris


def run(*args: str, token: str, env_b: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EASNB_TOKEN": token}
    if env_b is not None:
        env["EASNB_TOKEN_B"] = env_b
    return subprocess.run([sys.executable, "-m", "easnb", *args], capture_output=True, text=True, env=env, timeout=120)


IRIS_ROW = json.dumps({"features": [[5.1, 3.5, 1.4, 0.2]]})


def test_load_prints_the_table(demo: DemoServer) -> None:
    out = run("load", demo.endpoint, "iris", "--concurrency", "1,2", "--seconds", "0.5", "--warmup", "0.1",
              "--inputs", IRIS_ROW, token=demo.token)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["requests", "errors", "errors_by_code"] or "infer_per_s" in lines[0]
    assert "server_compute_infer_ms" in out.stdout and lines[2].split()[0] == "1" and lines[3].split()[0] == "2"
    assert demo.token not in out.stdout + out.stderr


def test_load_json_open_loop_and_any_method(demo: DemoServer) -> None:
    out = run("load", demo.endpoint, "iris", "--rate", "50", "--seconds", "0.5", "--warmup", "0", "--inputs", IRIS_ROW,
              "--json", token=demo.token)
    assert out.returncode == 0, out.stderr
    kept = json.loads(out.stdout)
    assert kept["mode"] == "rate" and kept["levels"][0]["rate"] == 50 and kept["levels"][0]["requests"] >= 20
    out = run("load", demo.endpoint, "helloworld.GreeterService/SayHello", "--concurrency", "2", "--seconds", "0.3",
              "--warmup", "0", "--inputs", '{"name": "x"}', "--json", token=demo.token)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["levels"][0]["requests"] > 5


def test_load_usage_errors(demo: DemoServer) -> None:
    out = run("load", demo.endpoint, "iris", "--inputs", IRIS_ROW, token=demo.token)
    assert out.returncode == 2 and "--concurrency" in out.stderr
    out = run("load", demo.endpoint, "iris", "--concurrency", "1,x", "--inputs", IRIS_ROW, token=demo.token)
    assert out.returncode == 2 and "comma-separated" in out.stderr
    out = run("load", demo.endpoint, "iris", "--concurrency", "1", "--inputs", "{nope", token=demo.token)
    assert out.returncode == 2 and "not JSON" in out.stderr
    out = run("load", demo.endpoint, "nope", "--concurrency", "1", "--inputs", IRIS_ROW, token=demo.token)
    assert out.returncode == 1 and "nope" in out.stderr and "Traceback" not in out.stderr


def test_compare_exit_code_says_the_verdict(demo: DemoServer, tmp_path: Path) -> None:
    features, _ = load_iris()
    csv = tmp_path / "iris.csv"
    csv.write_text(",".join(IRIS_FEATURES) + "\n" + "\n".join(",".join(f"{v:g}" for v in row) for row in features))
    differ = run("compare", demo.endpoint, demo.endpoint, "iris", "--model-b", "iris_v2", "--csv", str(csv),
                 "--latency-samples", "3", token=demo.token, env_b=demo.token)
    assert differ.returncode == 1, differ.stderr
    assert differ.stdout.splitlines()[0] == "differs on 6 of 150 rows" and "latency (ms)" in differ.stdout
    same = run("compare", demo.endpoint, demo.endpoint, "iris", "--csv", str(csv), "--latency-samples", "0",
               token=demo.token, env_b=demo.token)
    assert same.returncode == 0 and same.stdout.startswith("identical"), same.stdout + same.stderr
    wrong_b = run("compare", demo.endpoint, demo.endpoint, "iris", "--inputs", IRIS_ROW, token=demo.token, env_b="wrong")
    # a side that fails is not a difference: a script gating a deploy on the exit code must tell them apart
    assert wrong_b.returncode == 2 and "UNAUTHENTICATED" in wrong_b.stderr and demo.token not in wrong_b.stderr
    missing = run("compare", demo.endpoint, demo.endpoint, "iris", "--model-b", "nope", "--inputs", IRIS_ROW,
                  "--latency-samples", "0", token=demo.token, env_b=demo.token)
    assert missing.returncode == 2 and "nope" in missing.stderr and "Traceback" not in missing.stderr


def test_load_a_streaming_model(demo: DemoServer) -> None:
    out = run("load", demo.endpoint, "textgen", "--prompt", "one two three four five", "--max-tokens", "4",
              "--concurrency", "2", "--seconds", "0.5", "--warmup", "0.1", "--json", token=demo.token)
    assert out.returncode == 0, out.stderr
    level = json.loads(out.stdout)["levels"][0]
    assert level["tokens_per_request"] == 4 and level["ttft_p50_ms"] > 0 and level["itl_p50_ms"] > 0


def test_compare_prints_server_text_harmlessly(demo: DemoServer) -> None:
    data = json.dumps({"TEXT": ["\x1b[2Jcleared", "fine"]})
    out = run("compare", demo.endpoint, demo.endpoint, "text", "--model-b", "echo", "--inputs", data,
              "--latency-samples", "0", token=demo.token, env_b=demo.token)
    assert out.returncode == 1 and "outputs only in A" in out.stdout and "\x1b" not in out.stdout


def test_show_makes_control_characters_visible(capsys: pytest.CaptureFixture[str]) -> None:
    from easnb.cli_perf import show

    show("label \x1b[2Jcleared\u202e\nnext line")
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "\u202e" not in printed and printed.splitlines()[1] == "next line"


def test_load_exit_code_says_a_sweep_stopped_on_errors() -> None:
    """A model that fails every request after the first: the sweep stops on the error rate, prints what it
    measured, and exits 1 (it exited 0, so a script could not tell a failed sweep from a good one)."""
    from concurrent import futures

    import grpc

    from easnb.demo.server import SERVER_OPTIONS, V2Service, v2_handler

    from .test_loadtest import Slow

    model = Slow()
    model.fail_after = 1
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=SERVER_OPTIONS,
                         handlers=[v2_handler(V2Service({"slow": model.model()}))])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        common = ("load", f"127.0.0.1:{port}", "slow", "--concurrency", "2,4", "--seconds", "1", "--warmup", "0",
                  "--inputs", json.dumps({"x": [1.0]}))
        table = run(*common, token="")
        model.durations.clear()  # the first call of the next sweep passes again
        kept = run(*common, "--json", token="")
    finally:
        server.stop(None).wait()
    assert table.returncode == 1 and "INVALID_ARGUMENT" in table.stdout and "failed (more than 50%)" in table.stdout, table
    assert kept.returncode == 1 and json.loads(kept.stdout)["stopped"].startswith("stopped: "), kept
