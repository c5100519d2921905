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
    target = _own_folder(Path(destination))
    plan = []
    for source in notebooks():
        path = target / source.name
        _refuse_links(path)
        if path.exists() and not overwrite:
            continue
        plan.append((source, path))
    for source, path in plan:
        _write(path, source.read_bytes())
    return [path for _, path in plan]


def _own_folder(target: Path) -> Path:
    """``target``, made if needed, refused when it is a link, another user's, or writable by other users:
    whoever can write there can change (or plant) the notebooks you then run."""
    import stat

    target.mkdir(parents=True, exist_ok=True)
    info = os.lstat(target)
    why = ""
    if stat.S_ISLNK(info.st_mode):
        why = f"a symbolic link (to {os.readlink(target)!r})"
    elif hasattr(os, "getuid") and info.st_uid != os.getuid():
        why = "another user's folder"
    elif info.st_mode & stat.S_IWOTH:
        why = "writable by every user of this machine"
    if why:
        raise EasnbError(
            f"{str(target)!r} is {why}: someone else could change the notebooks you run from it.",
            hint="Copy the tutorials into a folder of your own: python -m easnb notebooks ~/easnb-tutorials",
        )
    return target


def _refuse_links(path: Path) -> None:
    if path.is_symlink() or (path.exists() and not path.is_file()):
        what = f"a symbolic link (to {os.readlink(path)!r})" if path.is_symlink() else "not a plain file"
        raise EasnbError(
            f"{str(path)!r} is {what}: easnb does not write through it.",
            hint="Remove it, or copy the tutorials into another folder: python -m easnb notebooks NEW_FOLDER",
        )


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


MANIFEST = ".easnb-tutorials.json"
MAX_READ = 64 << 20  # a tutorial is a few hundred KiB, with outputs a few MiB


def read_plain(path: Path) -> bytes:
    """The bytes of ``path`` if it is a plain file of at most ``MAX_READ`` bytes, never through a link:
    checked on the opened file, so a link, pipe or device swapped in after ``_refuse_links`` is an ``OSError``."""
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_READ:
            raise OSError(f"{str(path)!r} is not a plain file under {MAX_READ} bytes")
        return handle.read(MAX_READ + 1)[:MAX_READ]


def fingerprint(path: Path) -> str:
    """A hash of a notebook's cells (kind and source), so saved outputs are not an edit; "" if unreadable."""
    import hashlib
    import json

    try:
        cells = json.loads(read_plain(path).decode("utf-8"))["cells"]
        text = json.dumps([(c.get("cell_type"), "".join(c.get("source", ""))) for c in cells])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ""
    return hashlib.sha256(text.encode()).hexdigest()


def refresh(destination: str | Path) -> dict[str, str]:
    """Bring ``destination``'s copies up to date without touching the ones you edited.

    A missing tutorial is copied; a copy whose cells are still the ones copied last time
    (outputs do not count) is replaced when the tutorial changed; an edited copy is kept.
    What was copied is remembered in ``destination/.easnb-tutorials.json``. Returns
    ``{name: "copied" | "updated" | "up to date" | "kept (edited)"}``.
    """
    import json

    target = _own_folder(Path(destination))
    manifest_path = target / MANIFEST
    for path in [manifest_path, *(target / source.name for source in notebooks())]:
        _refuse_links(path)  # before anything is read or written
    try:
        manifest = json.loads(read_plain(manifest_path))
    except (OSError, ValueError):
        manifest = {}
    if not isinstance(manifest, dict):
        manifest = {}
    actions = {}
    for source in notebooks():
        path, new = target / source.name, fingerprint(source)
        if not path.exists():
            action = "copied"
        else:
            mine = fingerprint(path)
            if mine == new:
                action = "up to date"
            elif mine and mine == manifest.get(source.name):
                action = "updated"
            else:
                actions[source.name] = "kept (edited)"
                continue
        if action != "up to date":
            _write(path, source.read_bytes())
        manifest[source.name] = new
        actions[source.name] = action
    _write(manifest_path, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    return actions
