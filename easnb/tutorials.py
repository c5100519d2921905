"""The tutorial notebooks, shipped with the package: ``python -m easnb notebooks [DIR]`` copies them.

>>> [p.name for p in notebooks()][:1]
['01-quickstart.ipynb']
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import EasnbError

_HERE = Path(__file__).resolve().parent
# in a wheel the notebooks sit in easnb/_tutorials; in a checkout, in the repository's notebooks/
_FOLDERS = (_HERE / "_tutorials", _HERE.parent / "notebooks")


def folder() -> Path:
    """Where the shipped tutorial notebooks are."""
    for candidate in _FOLDERS:
        if candidate.is_dir() and any(candidate.glob("*.ipynb")):
            return candidate
    raise EasnbError("easnb's tutorial notebooks are missing from this installation.", hint="pip install --force-reinstall easnb")


def notebooks() -> list[Path]:
    """The tutorial notebooks, in order."""
    return sorted(folder().glob("*.ipynb"))


def copy_to(destination: str | Path, overwrite: bool = False) -> list[Path]:
    """Copy the tutorials into ``destination`` (made if needed); existing files are kept unless ``overwrite``.

    Never writes through a symbolic link: a link (or anything but a plain file) where a
    notebook would go raises ``EasnbError`` before anything is written. Each notebook is
    written to a temporary file beside it and renamed into place, so a link planted while
    copying is replaced, not followed.
    """
    target = Path(destination)
    target.mkdir(parents=True, exist_ok=True)
    plan = []
    for source in notebooks():
        path = target / source.name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            what = f"a symbolic link (to {os.readlink(path)!r})" if path.is_symlink() else "not a plain file"
            raise EasnbError(
                f"{str(path)!r} is {what}: easnb does not write through it.",
                hint="Remove it, or copy the tutorials into another folder: python -m easnb notebooks NEW_FOLDER",
            )
        if path.exists() and not overwrite:
            continue
        plan.append((source, path))
    for source, path in plan:
        _write(path, source.read_bytes())
    return [path for _, path in plan]


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` by renaming a fresh file over it (a rename replaces a link, never follows it)."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
