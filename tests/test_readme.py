"""The README's run command serves the tutorials; its test command is what CI runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


def test_readme_gives_both_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/lab" in readme and "bash .ci/run" in readme
    assert ".venv/bin/python -m pytest" in (ROOT / ".ci" / "run").read_text()
    suite = ".venv/bin/python -m pytest -n 3 --dist loadfile --no-loadscope-reorder"  # the full suite: CI runs what the README gives
    assert suite in readme and f"timeout 1500 {suite}" in (ROOT / ".ci" / "run").read_text()


def test_readme_names_every_venv_ci_makes_and_where_its_time_comes_from() -> None:
    import re

    ci, readme = (ROOT / ".ci" / "run").read_text(), (ROOT / "README.md").read_text()
    paragraph = readme[readme.index("`.ci/setup` creates"):readme.index("In a checkout the command-line tool")]
    venvs = set(re.findall(r"\.cache/([\w-]+-venv)", ci))
    assert len(venvs) >= 3 and all(f"`{venv}`" in paragraph for venv in venvs), venvs
    assert "== CI took" in ci.strip().splitlines()[-1] and "== CI took" in paragraph
    assert not re.search(r"\d+ s \(full suite", paragraph)  # no figure from an earlier run


@pytest.mark.timeout(120)
def test_run_command_serves_the_tutorials(tmp_path: Path) -> None:
    port, token = free_port(), "readme-test"
    env = {**os.environ, "EASNB_VENV": sys.prefix, "EASNB_LAB_DIR": str(tmp_path / "lab"), "JUPYTER_RUNTIME_DIR": str(tmp_path), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    proc = subprocess.Popen(
        ["bash", "scripts/lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token={token}", timeout=2) as r:
                    names = [item["name"] for item in json.load(r)["content"]]
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "JupyterLab did not start"
                time.sleep(0.3)
        assert "01-quickstart.ipynb" in names and "03-hello-world-deploy.ipynb" in names
        assert (tmp_path / "lab" / "01-quickstart.ipynb").exists()  # it serves the copies, not notebooks/
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=10) as r:
            assert r.status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
