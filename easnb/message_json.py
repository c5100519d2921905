"""Messages as JSON, ``google.protobuf.Any`` included, with the descriptors of the service they came from.

A ``google.protobuf.Any`` is unpacked with the pool the service came from (the server's
reflection or the compiled ``.proto``), then with what the reflection is asked for; one whose
type is unknown there prints as grpcurl prints it, ``{"@type": url, "@value": base64}``.
Printing never raises on a message protobuf parsed, and a hostile one cannot make it recurse
or ask the server without end (``MAX_ANY_DEPTH``, ``MAX_LOOKUPS``, ``MAX_URL``).

>>> from google.protobuf import struct_pb2
>>> to_json(struct_pb2.ListValue(values=[struct_pb2.Value(number_value=1)]))
[1.0]
"""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

from .reflection import is_repeated

ANY = "google.protobuf.Any"
#: Well-known types whose JSON is not an object of their fields (and whose ``Any`` holds ``"value"``).
SPECIAL_JSON = {
    "google.protobuf.Duration", "google.protobuf.Timestamp", "google.protobuf.FieldMask", "google.protobuf.Struct",
    "google.protobuf.ListValue", "google.protobuf.Value", "google.protobuf.Empty",
    *(f"google.protobuf.{w}Value" for w in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")),
}
#: ``Any`` inside ``Any`` deeper than this prints as ``@type``/``@value`` (a hostile reply cannot recurse without end).
MAX_ANY_DEPTH = 16
#: At most this many distinct types are looked up per conversion (each may ask the server's reflection);
#: the rest, and type URLs longer than ``MAX_URL``, print as ``@type``/``@value``.
MAX_LOOKUPS, MAX_URL = 16, 512
_JSON_OPTIONS = {"preserving_proto_field_name": True, "always_print_fields_with_no_presence": True}



def message_class(descriptor: Any) -> Any:
    return message_factory.GetMessageClass(descriptor)


def fields_by_name(descriptor: Any) -> dict[str, Any]:
    found = {f.name: f for f in descriptor.fields}
    found.update({f.json_name: f for f in descriptor.fields})
    return found


def sub_message(message: Any, path: list[Any]) -> Any:
    """The sub-message at ``path``: field names, each repeated field followed by a position, each map by a key."""
    node, steps = message, iter(path)
    for step in steps:
        field = fields_by_name(node.DESCRIPTOR)[step]
        container = getattr(node, field.name)
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            node = container[_map_key_value(entry.fields_by_name["key"], next(steps))]
        elif is_repeated(field):
            node = container[next(steps)]
        else:
            node = container
    return node


def _map_key_value(key_field: Any, key: Any) -> Any:
    """A map key from JSON text (``"7"``, ``"true"``) as the map's own key type."""
    if key_field.type == 8:  # bool
        return key if isinstance(key, bool) else key == "true"
    if key_field.type == 9:  # string
        return str(key)
    return int(key)


class Types:
    """Where ``Any`` types are found: ``pool`` (the service's), then ``lookup(full_name)`` (the server's
    reflection, if given), then protobuf's own well-known types. At most ``MAX_LOOKUPS`` distinct
    types are looked up, none with a URL over ``MAX_URL`` characters; the answers are kept."""

    def __init__(self, pool: Any, lookup: Any = None) -> None:
        self.pool = pool
        self.lookup = lookup
        self._found: dict[str, Any] = {}

    def find(self, url: str) -> Any:
        """The message descriptor an ``Any``'s type URL names; ``None`` when it is not to be found."""
        if url in self._found:
            return self._found[url]
        name = url.rsplit("/", 1)[-1]
        found = None
        if name and len(url) <= MAX_URL and len(self._found) < MAX_LOOKUPS:
            sources = [self.pool.FindMessageTypeByName, self.lookup]
            if name.startswith("google.protobuf."):
                sources.append(descriptor_pool.Default().FindMessageTypeByName)
            for source in filter(None, sources):
                try:
                    found = source(name)
                except Exception:  # KeyError, or whatever asking the server's reflection raised: not there
                    continue
                if found is not None:
                    break
        self._found[url] = found
        return found


def to_json(message: Message, pool: Any = None, find: Any = None) -> Any:
    """A message as a JSON-ready value (proto3 JSON: 64-bit integers as exact strings, bytes as base64).

    ``pool`` (by default the one the message's class came from), then ``find(full_name)`` (the
    server's reflection, as ``ServiceClient.to_json`` passes it), unpack ``Any`` fields;
    an ``Any`` of a type it lacks prints as ``{"@type": url, "@value": base64}``. Never raises
    on a reply that protobuf parsed.
    """
    return _to_json(message, Types(pool if pool is not None else message.DESCRIPTOR.file.pool, find), 0)


def _as_raw(message: Message) -> dict[str, Any]:
    """What is printed of a message ``json_format`` cannot print (an extension holding an unknown ``Any``)."""
    data = message.SerializePartialToString()
    return {"@type": f"type.googleapis.com/{message.DESCRIPTOR.full_name}", "@value": base64.b64encode(data).decode("ascii")}


def _to_json(message: Message, pool: Types, depth: int) -> Any:
    if message.DESCRIPTOR.full_name == ANY:
        return _any_json(message, pool, depth)
    anys = list(_anys(message, []))
    if not anys:
        return _message_dict(message)
    copy = type(message)()
    copy.CopyFrom(message)
    for path, _ in anys:
        sub_message(copy, path).Clear()
    result = _message_dict(copy)
    if "@value" in result and "@type" in result and len(result) == 2:
        return _as_raw(message)
    for path, inner in anys:
        place = result
        for step in path[:-1]:
            place = place[step]
        place[path[-1]] = _any_json(inner, pool, depth)
    return result


def _message_dict(message: Message) -> Any:
    """``MessageToDict``; a ``Value`` holding NaN or infinity (which proto3 JSON cannot write as a
    number) is written as the text ``"NaN"``/``"Infinity"``/``"-Infinity"``, as double fields are;
    what json_format still cannot print is ``_as_raw``."""
    try:
        return json_format.MessageToDict(message, **_JSON_OPTIONS)
    except (json_format.Error, ValueError):  # ValueError: a NaN Value at the top, json_format.Error: deeper
        copy = type(message)()
        copy.CopyFrom(message)
        _nonfinite_as_text(copy, 0)
        try:
            return json_format.MessageToDict(copy, **_JSON_OPTIONS)
        except (json_format.Error, TypeError, ValueError, KeyError):
            return _as_raw(message)
    except (TypeError, KeyError):
        return _as_raw(message)


def _nonfinite_as_text(message: Message, depth: int) -> None:
    if depth > 100:  # protobuf's own recursion limit
        return
    if message.DESCRIPTOR.full_name == "google.protobuf.Value" and message.WhichOneof("kind") == "number_value":
        number = message.number_value
        if number != number or number in (float("inf"), float("-inf")):
            message.string_value = "NaN" if number != number else ("Infinity" if number > 0 else "-Infinity")
        return
    for field, value in message.ListFields():
        entry = field.message_type
        if entry is None:
            continue
        if entry.GetOptions().map_entry:
            if entry.fields_by_name["value"].message_type is not None:
                for key in value:
                    _nonfinite_as_text(value[key], depth + 1)
        elif is_repeated(field):
            for item in value:
                _nonfinite_as_text(item, depth + 1)
        else:
            _nonfinite_as_text(value, depth + 1)


def _anys(message: Message, path: list[Any]) -> Any:
    """``(path, Any)`` for every ``Any`` in ``message``, not looking inside them."""
    for field, value in message.ListFields():
        entry = field.message_type
        if entry is None or field.is_extension:  # extensions are left to json_format (see _as_raw)
            continue
        if entry.GetOptions().map_entry:
            value_field = entry.fields_by_name["value"]
            if value_field.message_type is None:
                continue
            for key in value:
                yield from _sub_anys(value[key], [*path, field.name, _map_key(key)])
        elif is_repeated(field):
            for index, item in enumerate(value):
                yield from _sub_anys(item, [*path, field.name, index])
        else:
            yield from _sub_anys(value, [*path, field.name])


def _map_key(key: Any) -> Any:
    """A map key as MessageToDict writes it (text), so the JSON can be found by it."""
    return ("true" if key else "false") if isinstance(key, bool) else str(key)


def _sub_anys(message: Message, path: list[Any]) -> Any:
    if message.DESCRIPTOR.full_name == ANY:
        yield path, message
    else:
        yield from _anys(message, path)


def _any_json(message: Any, pool: Types, depth: int) -> Any:
    url = message.type_url
    if not url and not message.value:
        return {}
    target = pool.find(url)
    inner = None
    if target is not None and depth < MAX_ANY_DEPTH:
        try:
            inner = message_class(target).FromString(message.value)
        except Exception:  # the bytes do not parse as that type
            inner = None
    if inner is None:
        return {"@type": url, "@value": base64.b64encode(message.value).decode("ascii")}
    body = _to_json(inner, pool, depth + 1)
    if target.full_name in SPECIAL_JSON or target.full_name == ANY:
        return {"@type": url, "value": body}
    return {"@type": url, **body}
