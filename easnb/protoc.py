"""Compile a ``.proto`` file at run time with grpcio-tools' bundled protoc.

Needs ``grpcio-tools`` (``pip install easnb[proto]``); nothing is imported into
protobuf's default pool, so a user's own ``*_pb2`` modules never collide with it.
"""

from __future__ import annotations

import importlib.resources
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .errors import EasnbError


def compile_descriptor_set(
    proto: str | Path, include: Sequence[str | Path] = (), include_imports: bool = True
) -> bytes:
    """A serialized FileDescriptorSet for ``proto`` (and, by default, what it imports)."""
    try:
        from grpc_tools import protoc
    except ImportError:
        raise EasnbError(
            "Loading a .proto file needs grpcio-tools.",
            hint="pip install 'easnb[proto]'  (or: pip install grpcio-tools)",
        ) from None
    proto = Path(proto)
    if not proto.is_file():
        raise EasnbError(f"No .proto file at {str(proto)!r}.", hint="Check the path; it is relative to the current folder.")
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.binpb"
        args = ["protoc", f"-I{proto.resolve().parent}", *(f"-I{Path(i).resolve()}" for i in include)]
        args += [f"-I{well_known}", f"--descriptor_set_out={out}"]
        if include_imports:
            args.append("--include_imports")
        if protoc.main([*args, proto.name]) != 0 or not out.exists():
            raise EasnbError(f"protoc could not compile {str(proto)!r}.", hint="protoc printed the reason above.")
        return out.read_bytes()
