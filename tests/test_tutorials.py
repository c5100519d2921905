"""`easnb notebooks DIR`: copies the tutorials, and never writes through a link planted in DIR."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from easnb import EasnbError
from easnb.tutorials import copy_to, notebooks

FIRST = notebooks()[0].name


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "easnb", "notebooks", *args], capture_output=True, text=True, timeout=60)


def test_copies_then_keeps_then_overwrites(tmp_path: Path) -> None:
    folder = tmp_path / "t"
    assert [p.name for p in copy_to(folder)] == [p.name for p in notebooks()]
    (folder / FIRST).write_text("mine")
    assert copy_to(folder) == []
    assert (folder / FIRST).read_text() == "mine"
    copy_to(folder, overwrite=True)
    assert (folder / FIRST).read_bytes() == notebooks()[0].read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in notebooks())  # no temporary left


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
def test_a_planted_link_is_refused_on_the_command_line(tmp_path: Path, dangling: bool) -> None:
    folder, victim = tmp_path / "t", tmp_path / "victim.txt"
    folder.mkdir()
    if not dangling:
        victim.write_text("precious")
    (folder / FIRST).symlink_to(victim)
    for extra in (["--overwrite"], []):
        done = run(str(folder), *extra)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "symbolic link" in done.stderr and "Traceback" not in done.stderr
        assert (victim.read_text() == "precious") if not dangling else not victim.exists()
    assert [p.name for p in folder.iterdir()] == [FIRST]  # nothing else was written either


def test_a_planted_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / FIRST).mkdir()
    with pytest.raises(EasnbError, match="not a plain file"):
        copy_to(tmp_path, overwrite=True)


def test_a_link_planted_during_the_copy_is_replaced_not_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from easnb import tutorials

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = tmp_path / "t"
    folder.mkdir()
    write = tutorials._write

    def plant_then_write(path: Path, data: bytes) -> None:
        path.unlink(missing_ok=True)
        path.symlink_to(victim)  # an attacker wins the race between the check and the write
        write(path, data)

    monkeypatch.setattr(tutorials, "_write", plant_then_write)
    copy_to(folder, overwrite=True)
    assert victim.read_text() == "precious"
    assert not (folder / FIRST).is_symlink()


def test_a_failure_easnb_did_not_foresee_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """A folder that is a file (or a link swapped for a folder mid-copy) raised OSError, printed as a traceback."""
    taken = tmp_path / "taken"
    taken.write_text("x")
    done = run(str(taken))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("error: easnb notebooks failed: FileExistsError: ") and done.stderr.count("\n") == 1
