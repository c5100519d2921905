"""What Binder will do, checked without Docker: the Dockerfile repo2docker would build, and a replay."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.network, pytest.mark.timeout(900)]


def test_binder_files_parse() -> None:
    lines = [l.strip() for l in (ROOT / "binder" / "requirements.txt").read_text().splitlines()]
    # Binder ignores pyproject.toml once binder/ exists: install the package, with its notebooks extra, here
    assert [l for l in lines if l and not l.startswith("#")] == [".[notebooks]"]
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert "set -e" in post_build and os.access(ROOT / "binder" / "postBuild", os.X_OK)
    assert "lab/tree/notebooks/01-quickstart.ipynb" in (ROOT / "README.md").read_text()


def test_repo2docker_would_install_requirements_and_run_post_build() -> None:
    repo2docker = shutil.which("repo2docker") or str(Path(sys.executable).parent / "repo2docker")
    if not Path(repo2docker).exists():
        pytest.skip("jupyter-repo2docker is not installed")
    run = subprocess.run([repo2docker, "--no-build", "--debug", "--no-run", str(ROOT)], capture_output=True, text=True, timeout=120)
    dockerfile = run.stdout + run.stderr
    assert run.returncode == 0, dockerfile[-2000:]
    assert 'pip install --no-cache-dir -r "binder/requirements.txt"' in dockerfile
    assert "./binder/postBuild" in dockerfile


def test_replay_in_a_fresh_venv_runs_the_quickstart(tmp_path: Path) -> None:
    venv = tmp_path / "binder-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # Binder's `pip install -r binder/requirements.txt`, resolved and installed by uv (the dev extra's):
    # the same requirements into the same fresh venv, in seconds where pip took minutes
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    pip = [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python")]
    install = subprocess.run([*pip, "-r", "binder/requirements.txt"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    env = {**os.environ, "HOME": str(tmp_path / "home"), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "MPLBACKEND": "Agg"}
    for name in ("EASNB_ENDPOINT", "EASNB_TOKEN", "VIRTUAL_ENV"):
        env.pop(name, None)
    post = subprocess.run(["bash", "binder/postBuild"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert post.returncode == 0, post.stdout + post.stderr
    out = tmp_path / "out"
    run = subprocess.run(
        [str(venv / "bin" / "jupyter"), "nbconvert", "--to", "notebook", "--execute", "--output-dir", str(out),
         "--ExecutePreprocessor.timeout=180", "notebooks/01-quickstart.ipynb"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (out / "01-quickstart.ipynb").exists()
