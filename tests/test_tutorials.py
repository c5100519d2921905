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


RACE = """
import os, sys
from pathlib import Path
from easnb import tutorials
folder, kind, victim = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
check = tutorials._refuse_links

def check_then_plant(path):
    check(path)
    if path.name == tutorials.notebooks()[0].name:  # an attacker wins the race between the check and the read
        path.unlink()
        os.mkfifo(path) if kind == "fifo" else path.symlink_to(victim)

tutorials._refuse_links = check_then_plant
print(tutorials.refresh(folder)[tutorials.notebooks()[0].name])
"""


@pytest.mark.parametrize("kind", ["fifo", "link"])
def test_refresh_reads_nothing_swapped_in_after_its_check(tmp_path: Path, kind: str) -> None:
    """A pipe planted after the check hung ``--refresh`` forever; a link was read through (here to a file
    holding the tutorial itself, so the copy looked unedited and was replaced)."""
    folder, victim = tmp_path / "t", tmp_path / "victim.ipynb"
    copy_to(folder)
    victim.write_bytes(notebooks()[0].read_bytes())
    done = subprocess.run([sys.executable, "-c", RACE, str(folder), kind, str(victim)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "kept (edited)"  # what it cannot read as a plain file counts as edited: left alone
    assert victim.read_bytes() == notebooks()[0].read_bytes()


@pytest.mark.parametrize("kind", ["writable-by-all", "link"])
def test_a_folder_others_can_write_is_refused(tmp_path: Path, kind: str) -> None:
    """A folder every user can write (``/tmp/x`` made 0777, or ``/tmp`` itself): another user could plant
    ``01-quickstart.ipynb`` first (kept, and opened by you) or change the copies later; a link sends the
    copies wherever it points."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = tmp_path / "t"
    if kind == "link":
        folder.symlink_to(elsewhere, target_is_directory=True)
    else:
        folder.mkdir()
        folder.chmod(0o777)
    for extra in ([], ["--overwrite"], ["--refresh"]):
        done = run(str(folder), *extra)
        assert done.returncode == 1 and "someone else could change the notebooks" in done.stderr, done.stderr
    assert not list(elsewhere.iterdir()) and (kind == "link" or not list(folder.iterdir()))
    folder.unlink() if kind == "link" else folder.chmod(0o755)
    assert len(copy_to(folder)) == len(notebooks())  # a folder of one's own works
