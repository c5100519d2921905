"""The README's two checkout commands, in order, on one clone: ``bash scripts/lab`` (with a notebook
saved in JupyterLab, as its autosave does) and then what ``bash .ci/run`` checks about the tree:
the tracked notebooks stay clean, and a wheel or sdist built here carries clean tutorials only,
whatever outputs or checkpoints the checkout holds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest

from .conftest import free_port
from .seedparts import stop

ROOT = Path(__file__).resolve().parents[1]
LAB_TOKEN = "lab-token-for-test"
pytestmark = pytest.mark.timeout(600)


def clone(into: Path) -> Path:
    """The checkout's files (tracked and new, not ignored) in a fresh git repository."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    git(into, "init", "-q")
    git(into, "add", "-A")
    git(into, "commit", "-q", "-m", "clone")
    return into


def git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args]
    return subprocess.run(command, cwd=repo, capture_output=True, text=True, check=True).stdout


def api(port: int, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/contents/{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {LAB_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read() or b"null")


def start_lab(repo: Path, tmp: Path, port: int) -> subprocess.Popen[str]:
    """``bash scripts/lab`` with the venv running this test (so nothing is installed)."""
    env = {
        **os.environ, "EASNB_VENV": sys.prefix, "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), "JUPYTER_DATA_DIR": str(tmp / "data"),
    }
    env.pop("PYTHONPATH", None)
    log = open(tmp / "lab.log", "w")
    proc = subprocess.Popen(
        ["bash", "scripts/lab", "--no-browser", f"--port={port}", f"--IdentityProvider.token={LAB_TOKEN}"],
        cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={LAB_TOKEN}", timeout=2)
            return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                stop(proc)
                pytest.fail("scripts/lab did not start JupyterLab:\n" + (tmp / "lab.log").read_text()[-3000:])
            time.sleep(0.3)


def outputs_in(text: str) -> int:
    nb = json.loads(text)
    return sum(len(c.get("outputs", [])) for c in nb["cells"]) + ("widgets" in nb.get("metadata", {}))


def test_scripts_lab_then_ci_on_one_clone(tmp_path: Path) -> None:
    repo = clone(tmp_path / "clone")
    tracked = {p.name: p.read_bytes() for p in (repo / "notebooks").glob("*.ipynb")}
    port = free_port()
    proc = start_lab(repo, tmp_path, port)
    try:
        # what JupyterLab does with an opened, run and autosaved notebook: a checkpoint, then a save with outputs
        api(port, "POST", "01-quickstart.ipynb/checkpoints")
        model = api(port, "GET", "01-quickstart.ipynb?content=1")
        cell = next(c for c in model["content"]["cells"] if c["cell_type"] == "code")
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ran in the lab\n"}]
        api(port, "PUT", "01-quickstart.ipynb", {"type": "notebook", "format": "json", "content": model["content"]})
        api(port, "POST", "01-quickstart.ipynb/checkpoints")
    finally:
        stop(proc, timeout=15)
    lab = repo / "lab"
    assert "ran in the lab" in (lab / "01-quickstart.ipynb").read_text() and (lab / ".ipynb_checkpoints").is_dir()
    # what .ci/run found broken before: the tracked notebooks hold no outputs, and nothing new is tracked
    assert {p.name: p.read_bytes() for p in (repo / "notebooks").glob("*.ipynb")} == tracked
    assert not (repo / "notebooks" / ".ipynb_checkpoints").exists()
    assert git(repo, "status", "--porcelain") == ""

    # lab/ is refreshed from notebooks/: unedited copies follow (outputs do not count as edits), edited ones stay
    for name, text in (("02-tensors-and-dataframes.ipynb", "# a newer tutorial"), ("04-performance.ipynb", "# newer")):
        nb = json.loads((repo / "notebooks" / name).read_text())
        nb["cells"][0]["source"] = text
        (repo / "notebooks" / name).write_text(json.dumps(nb))
    mine = json.loads((lab / "04-performance.ipynb").read_text())
    mine["cells"][0]["source"] = "# my own notes"
    (lab / "04-performance.ipynb").write_text(json.dumps(mine))
    refreshed = subprocess.run([sys.executable, "-m", "easnb", "notebooks", "lab", "--refresh"], cwd=repo,
                               capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(repo)})
    assert refreshed.returncode == 0, refreshed.stderr
    assert "01-quickstart.ipynb: up to date" in refreshed.stdout and "02-tensors-and-dataframes.ipynb: updated" in refreshed.stdout
    assert "04-performance.ipynb: kept (edited)" in refreshed.stdout
    assert "a newer tutorial" in (lab / "02-tensors-and-dataframes.ipynb").read_text()
    assert "my own notes" in (lab / "04-performance.ipynb").read_text()
    assert "ran in the lab" in (lab / "01-quickstart.ipynb").read_text()

    # a checkout that was used the old way (executed notebooks and checkpoints in notebooks/) still packs clean
    shutil.copy(lab / "01-quickstart.ipynb", repo / "notebooks" / "01-quickstart.ipynb")
    shutil.copytree(lab / ".ipynb_checkpoints", repo / "notebooks" / ".ipynb_checkpoints")
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist)],
                           cwd=repo, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packed = {n: archive.read(n).decode() for n in archive.namelist() if "ipynb" in n}
    assert sorted(packed) == [f"easnb/_tutorials/{name}" for name in sorted(tracked)]
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if "ipynb" in m.name]
        packed.update({m.name: archive.extractfile(m).read().decode() for m in members})  # type: ignore[union-attr]
    assert len(packed) == 2 * len(tracked) and not any(".ipynb_checkpoints" in name for name in packed)
    assert {name: outputs_in(text) for name, text in packed.items()} == dict.fromkeys(packed, 0)
    assert any("ran in the lab" not in text and "easnb quickstart" in text for text in packed.values())


def test_refresh_never_writes_through_a_link_and_keeps_broken_copies(tmp_path: Path) -> None:
    from easnb.errors import EasnbError
    from easnb.tutorials import MANIFEST, refresh

    lab, elsewhere = tmp_path / "lab", tmp_path / "elsewhere.txt"
    lab.mkdir()
    elsewhere.write_text("mine")
    (lab / MANIFEST).symlink_to(elsewhere)
    with pytest.raises(EasnbError, match="does not write through it"):
        refresh(lab)
    assert elsewhere.read_text() == "mine" and not (lab / "01-quickstart.ipynb").exists()  # refused before any write
    (lab / MANIFEST).unlink()
    (lab / "02-tensors-and-dataframes.ipynb").write_text("{ not json")  # a copy someone broke is theirs: kept
    (lab / MANIFEST).write_text("[1, 2]")  # a manifest that is not ours: ignored
    actions = refresh(lab)
    assert actions["02-tensors-and-dataframes.ipynb"] == "kept (edited)" and actions["01-quickstart.ipynb"] == "copied"
    assert (lab / "02-tensors-and-dataframes.ipynb").read_text() == "{ not json"
    assert set(refresh(lab).values()) == {"up to date", "kept (edited)"}


@pytest.mark.timeout(120)
def test_scripts_lab_banner_names_the_port_and_address_asked_for(tmp_path: Path) -> None:
    """The banner before JupyterLab's own lines, with a stand-in ``jupyter`` that only says what it was given."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, body in (("python", f'exec "{sys.executable}" "$@"'), ("jupyter", 'echo "jupyter $*"')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "EASNB_VENV": str(tmp_path / "venv"), "EASNB_LAB_DIR": str(tmp_path / "lab")}
    env.pop("JUPYTER_PORT", None)

    def banner(*args: str, **extra: str) -> str:
        done = subprocess.run(["bash", "scripts/lab", *args], cwd=ROOT, env={**env, **extra}, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0 and f"jupyter lab --notebook-dir={tmp_path / 'lab'}" in done.stdout, done
        return done.stdout

    plain = banner()
    assert "http://localhost:8888/lab?token=" in plain and "localhost only" in plain, plain
    for args in (("--port=8899",), ("--no-browser", "--port", "8899")):
        text = banner(*args)
        assert "http://localhost:8899/lab?token=" in text and ":8888" not in text, text
    assert "http://localhost:9001/lab" in banner(JUPYTER_PORT="9001")
    assert "http://localhost:9002/lab" in banner("--ServerApp.port=9002", JUPYTER_PORT="9001")
    exposed = banner("--ip=0.0.0.0")
    assert "listens on 0.0.0.0: anyone who can reach" in exposed and "localhost only" not in exposed, exposed
