"""The package as people install it: wheel and sdist contents, twine check, and the README run
from a fresh venv outside the repository."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.network, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    pytest.importorskip("build", reason="the dev extra (build) is not installed")
    out = tmp_path_factory.mktemp("dist")
    run = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--sdist", "--outdir", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    yield out


def test_wheel_and_sdist_carry_what_the_readme_promises(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("easnb/py.typed", "easnb/_proto/files/helloworld.proto", "easnb/_proto/files/grpc_predict_v2.proto",
                   "easnb/_tutorials/01-quickstart.ipynb", "easnb/_tutorials/03-hello-world-deploy.ipynb", "easnb/demo/iris.csv"):
        assert needed in names, needed
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith("tests/") or "__pycache__" in n or ".ipynb_checkpoints" in n for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata and "Project-URL: Source" in metadata
    assert "Classifier: Programming Language :: Python :: 3.13" in metadata
    (sdist,) = dist.glob("*.tar.gz")
    members = [m.split("/", 1)[1] for m in tarfile.open(sdist).getnames() if "/" in m]
    assert "LICENSE" in members and "protos/helloworld.proto" in members and "notebooks/01-quickstart.ipynb" in members
    assert not any(m.startswith(("tests/", ".ci/", "bench/", ".venv", ".cache")) for m in members), members
    twine = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
                           capture_output=True, text=True, timeout=120)
    assert twine.returncode == 0, twine.stdout + twine.stderr


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## In ten lines\s+```python\n(.*?)```", text, re.S)
    assert block, "the README's ten-line example is missing"
    return block.group(1)


def test_the_readme_runs_from_a_fresh_venv_outside_the_repo(dist: Path, tmp_path: Path) -> None:
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(uv).exists():
        pytest.skip("uv is not installed (the dev extra has it)")
    (wheel,) = dist.glob("*.whl")
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run([uv, "pip", "install", "--quiet", "--python", str(python), f"{wheel}[proto]"],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    away = tmp_path / "elsewhere"
    away.mkdir()
    run = subprocess.run([str(python), "-c", readme_example()], cwd=away, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Hello, World!" in run.stdout and "setosa" in run.stdout, run.stdout
    copied = subprocess.run([str(python), "-m", "easnb", "notebooks", "tutorials"], cwd=away, capture_output=True, text=True, timeout=60)
    assert copied.returncode == 0 and "jupyter lab tutorials" in copied.stdout, copied.stderr
    assert sorted(p.name for p in (away / "tutorials").glob("*.ipynb"))[0] == "01-quickstart.ipynb"
    missing = subprocess.run([str(python), "-c", "import easnb; easnb.inspect"], cwd=away, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "pip install 'easnb[widgets]'" in missing.stderr and "ModuleNotFoundError" not in missing.stderr
