"""The tutorial notebooks, shipped with the package: ``python -m easnb notebooks [DIR]`` copies them.

>>> [p.name for p in notebooks()][:1]
['01-quickstart.ipynb']
"""

from __future__ import annotations

import shutil
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
    """Copy the tutorials into ``destination`` (made if needed); existing files are kept unless ``overwrite``."""
    target = Path(destination)
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for source in notebooks():
        path = target / source.name
        if path.exists() and not overwrite:
            continue
        shutil.copyfile(source, path)
        copied.append(path)
    return copied
