"""The ``.proto`` files easnb ships: the V2 API, the EAS guide's hello-world, health.

>>> path("helloworld.proto").name
'helloworld.proto'
"""

from __future__ import annotations

from pathlib import Path

from .errors import EasnbError

_HERE = Path(__file__).resolve().parent
# in a wheel the files sit in easnb/_proto/files; in a checkout, in the repository's protos/
_FOLDERS = (_HERE / "_proto" / "files", _HERE.parent / "protos")


def folder() -> Path:
    """The folder holding the shipped ``.proto`` files (an ``-I`` for protoc)."""
    for candidate in _FOLDERS:
        if candidate.is_dir():
            return candidate
    raise EasnbError("easnb's .proto files are missing from this installation.", hint="Reinstall: pip install --force-reinstall easnb")


def names() -> list[str]:
    """The shipped files' names."""
    return sorted(p.name for p in folder().glob("*.proto"))


def path(name: str) -> Path:
    """The path of a shipped ``.proto`` file, e.g. ``path("helloworld.proto")``, usable with protoc."""
    found = folder() / name
    if not found.is_file():
        raise EasnbError(f"easnb ships no {name!r}.", hint=f"It ships: {', '.join(names())}.")
    return found
