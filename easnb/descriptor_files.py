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
_SHIPPED = re.compile(r"google/protobuf/(?:compiler/)?[a-z_]+\.proto")


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
    references: int = 200  # message types reached through fields, one inside the next (protobuf recurses ~490)
    elements: int = 250_000  # messages, fields, enums and their values, services, methods: each costs protobuf ~10 us


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
    deeper than ``limits.import_depth``, message types nested deeper than ``limits.nesting``,
    more than ``limits.elements`` declarations in all, a map entry protoc would not write, and
    a type declared in ``google.protobuf`` by any file but protobuf's own (well-known types
    get protobuf's special handling by name: a server's own ``Timestamp`` is not to get it).
    """
    for proto in files.values():
        for message in proto.message_type:
            if nesting(message) > limits.nesting:
                raise ReflectionError(
                    f"{proto.name!r} nests message types more than {limits.nesting} deep (in {message.name!r}): refused."
                )
    count = 0
    for proto in files.values():
        count += _declarations(proto, shipped(proto.name) is None)
        if count > limits.elements:
            raise ReflectionError(f"The server's files declare over {limits.elements} types, fields and values: refused.")
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


_MAP_KEYS = frozenset({3, 4, 5, 6, 7, 8, 9, 13, 15, 16, 17, 18})  # the integer types, bool and string, as protoc allows


def _declarations(proto: descriptor_pb2.FileDescriptorProto, foreign: bool) -> int:
    """How many declarations ``proto`` holds; refuses odd map entries, and ``google.protobuf`` types when ``foreign``."""
    count = len(proto.service) + len(proto.extension) + sum(len(s.method) for s in proto.service)
    todo = [(proto.package, m) for m in proto.message_type]
    enums = [(proto.package, e) for e in proto.enum_type]
    while todo:
        scope, message = todo.pop()
        name = f"{scope}.{message.name}" if scope else message.name
        count += 1 + len(message.field) + len(message.extension) + len(message.oneof_decl)
        if message.options.map_entry and not _plain_map_entry(message):
            raise ReflectionError(f"{proto.name!r} declares {name!r} as a map entry, but not as protoc writes one "
                                  "(fields key = 1 and value = 2 only, an integer, bool or string key): refused.")
        if foreign and (name + ".").startswith("google.protobuf."):
            raise ReflectionError(f"{proto.name!r} declares {name!r}: only protobuf's own files declare google.protobuf types; refused.")
        todo.extend((name, inner) for inner in message.nested_type)
        enums.extend((name, e) for e in message.enum_type)
    for scope, enum in enums:
        name = f"{scope}.{enum.name}" if scope else enum.name
        count += 1 + len(enum.value)
        if foreign and (name + ".").startswith("google.protobuf."):
            raise ReflectionError(f"{proto.name!r} declares {name!r}: only protobuf's own files declare google.protobuf types; refused.")
    return count


def _plain_map_entry(message: descriptor_pb2.DescriptorProto) -> bool:
    by_number = {f.number: f for f in message.field}
    key, value = by_number.get(1), by_number.get(2)
    return (
        len(message.field) == 2 and key is not None and value is not None
        and (key.name, value.name) == ("key", "value") and key.label == value.label == 1  # optional
        and key.type in _MAP_KEYS
        and not (message.nested_type or message.enum_type or message.oneof_decl or message.extension)
    )


def reference_bound(messages: list[Any]) -> int:
    """An upper bound on how deep protobuf's ``GetMessageClass`` can recurse from ``messages``.

    It recurses once per message type reached through a field (or an extension) not made yet,
    in an order that depends on which classes exist already; so the bound is the longest path
    through the types' strongly connected groups, each counted at its size (no recursion here).
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    group_of: dict[str, int] = {}
    sizes: list[int] = []
    on_stack: list[str] = []
    node: dict[str, Any] = {}
    for root in messages:  # Tarjan's strongly connected components, iteratively
        if root.full_name in index:
            continue
        work = [(root, _edges(root))]
        index[root.full_name] = low[root.full_name] = len(index)
        node[root.full_name] = root
        on_stack.append(root.full_name)
        while work:
            current, edges = work[-1]
            following = next(edges, None)
            if following is not None:
                name = following.full_name
                if name not in index:
                    index[name] = low[name] = len(index)
                    node[name] = following
                    on_stack.append(name)
                    work.append((following, _edges(following)))
                elif name not in group_of:
                    low[current.full_name] = min(low[current.full_name], index[name])
                continue
            work.pop()
            name = current.full_name
            if work:
                parent = work[-1][0].full_name
                low[parent] = min(low[parent], low[name])
            if low[name] == index[name]:
                group = len(sizes)
                sizes.append(0)
                while True:
                    member = on_stack.pop()
                    group_of[member] = group
                    sizes[group] += 1
                    if member == name:
                        break
    # groups are numbered children first, so one pass in that order finds each group's longest path
    longest = [0] * len(sizes)
    for group in range(len(sizes)):
        longest[group] = sizes[group]
    members: dict[int, list[str]] = {}
    for name, group in group_of.items():
        members.setdefault(group, []).append(name)
    for group in range(len(sizes)):
        below = 0
        for name in members[group]:
            for following in _edges(node[name]):
                other = group_of[following.full_name]
                if other != group:
                    below = max(below, longest[other])
        longest[group] = sizes[group] + below
    return max(longest, default=0)


def all_messages(files: list[Any]) -> list[Any]:
    """Every message type the file descriptors declare, nested ones included (no recursion)."""
    found, todo = [], [m for f in files for m in f.message_types_by_name.values()]
    while todo:
        message = todo.pop()
        found.append(message)
        todo.extend(message.nested_types)
    return found


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
