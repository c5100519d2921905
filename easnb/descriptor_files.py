"""``.proto`` files a server sent, checked before protobuf sees them, then built into a private pool.

A server's reflection answer is data: a file graph with a cycle crashes protobuf's C
implementation, a deep nesting of message types recurses past Python's limit, and a
huge answer costs memory. ``check`` refuses each of these with a ``ReflectionError``
before anything is built; ``build`` adds the files in import order, each failure typed.

>>> order = check({"a.proto": parse(b'\\n\\x07a.proto', "a.proto")}, Limits())
>>> [f.name for f in order]
['a.proto']
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message import DecodeError

from .errors import ReflectionError

# files protobuf itself ships: google/protobuf/timestamp.proto is google.protobuf.timestamp_pb2
_SHIPPED = re.compile(r"google/protobuf/(?:[a-z_]+/)?[a-z_]+\.proto")


@dataclass(frozen=True)
class Limits:
    """What one reflection look-up may bring: files, bytes, the longest import chain, message nesting.

    Generous for real services (Google's largest APIs import a few hundred files of a few
    MiB in all); small enough that a hostile answer costs little time and memory.
    """

    files: int = 2000
    total_bytes: int = 64 << 20
    import_depth: int = 64
    nesting: int = 32
    references: int = 100  # message types reached through fields, one inside the next


def parse(data: bytes, name: str) -> descriptor_pb2.FileDescriptorProto:
    """``data`` as a FileDescriptorProto; ``name`` says what was asked for, for the error."""
    try:
        return descriptor_pb2.FileDescriptorProto.FromString(data)
    except (DecodeError, ValueError, TypeError, RecursionError) as exc:
        raise ReflectionError(f"The server's reflection sent {name} as bytes that are no file descriptor ({exc}).") from None


def shipped(name: str) -> descriptor_pb2.FileDescriptorProto | None:
    """The file ``name`` as protobuf ships it (``google/protobuf/*.proto``), or ``None``."""
    if not _SHIPPED.fullmatch(name):
        return None
    try:
        importlib.import_module(name[: -len(".proto")].replace("/", ".") + "_pb2")
        found = descriptor_pool.Default().FindFileByName(name)
    except (ImportError, KeyError):
        return None
    proto = descriptor_pb2.FileDescriptorProto()
    found.CopyToProto(proto)
    return proto


def nesting(message: Any) -> int:
    """How deep message types nest inside ``message`` (a DescriptorProto), counted without recursion."""
    deepest, todo = 0, [(message, 1)]
    while todo:
        current, depth = todo.pop()
        deepest = max(deepest, depth)
        todo.extend((inner, depth + 1) for inner in current.nested_type)
    return deepest


def check(files: dict[str, descriptor_pb2.FileDescriptorProto], limits: Limits) -> list[descriptor_pb2.FileDescriptorProto]:
    """The files in import order (each after what it imports), or a ``ReflectionError`` naming the fault.

    Refuses an import cycle, a file importing one that is missing, an import chain
    deeper than ``limits.import_depth``, message types nested deeper than ``limits.nesting``.
    """
    for proto in files.values():
        for message in proto.message_type:
            if nesting(message) > limits.nesting:
                raise ReflectionError(
                    f"{proto.name!r} nests message types more than {limits.nesting} deep (in {message.name!r}): refused."
                )
    order: list[descriptor_pb2.FileDescriptorProto] = []
    depth: dict[str, int] = {}
    for root in files:
        if root in depth:
            continue
        path: list[str] = [root]  # the import chain being walked, an explicit stack instead of recursion
        pending = [iter(files[root].dependency)]
        on_path = {root}
        while pending:
            child = next(pending[-1], None)
            if child is None:
                done = path.pop()
                pending.pop()
                on_path.discard(done)
                depth[done] = 1 + max((depth[d] for d in files[done].dependency), default=0)
                if depth[done] > limits.import_depth:
                    raise ReflectionError(f"{done!r} has an import chain over {limits.import_depth} files deep: refused.")
                order.append(files[done])
                continue
            if child in on_path:
                cycle = " -> ".join([*path[path.index(child):], child])
                raise ReflectionError(f"The server's files import each other in a cycle ({cycle}): refused.")
            if child in depth:
                continue
            if child not in files:
                raise ReflectionError(f"{path[-1]!r} imports {child!r}, which the server's reflection did not send.")
            path.append(child)
            pending.append(iter(files[child].dependency))
            on_path.add(child)
    return order


def reference_depth(roots: list[Any], limit: int) -> int:
    """How deep message types reach each other through fields (and extensions) from ``roots``,
    walked as protobuf's ``GetMessageClass`` walks them, without recursion; stops past ``limit``."""
    deepest, seen = 0, set()
    for root in roots:
        if root.full_name in seen:
            continue
        seen.add(root.full_name)
        stack = [_edges(root)]
        while stack:
            deepest = max(deepest, len(stack))
            if deepest > limit:
                return deepest
            following = next(stack[-1], None)
            if following is None:
                stack.pop()
            elif following.full_name not in seen:
                seen.add(following.full_name)
                stack.append(_edges(following))
    return deepest


def _edges(message: Any) -> Any:
    for field in message.fields:
        if field.message_type is not None:
            yield field.message_type
    for extension in message.extensions:
        yield extension.containing_type
        if extension.message_type is not None:
            yield extension.message_type


def build(pool: Any, order: list[descriptor_pb2.FileDescriptorProto], known: set[str]) -> None:
    """Add the files of ``order`` not yet in ``known`` to ``pool``, in that order (``known`` grows)."""
    for proto in order:
        if proto.name in known:
            continue
        try:
            pool.Add(proto)
        except Exception as exc:  # protobuf raises TypeError, ValueError or KeyError for what it cannot build
            raise ReflectionError(f"protobuf cannot build the server's {proto.name!r}: {exc}") from None
        known.add(proto.name)
