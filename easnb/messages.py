"""Request messages from what a user gives, against the service's own descriptor pool.

A request is built, checked (unknown fields, types, proto2 required fields) and serialized
here, before any call opens, so a mistake is a ``RequestError`` naming the field, never a
failure inside gRPC blamed on the server. Python values go in as the message constructor
takes them (``bytes`` into bytes fields as they are, ``datetime`` into Timestamps); JSON
(text, or what the constructor refuses) as proto3 JSON says, bytes as base64, ``Any`` as
``{"@type": ..., fields}`` or grpcurl's ``{"@type": ..., "@value": base64}``. Replies
print with ``easnb.message_json.to_json`` (re-exported here).

>>> from google.protobuf import descriptor_pb2
>>> build(descriptor_pb2.FieldDescriptorProto, {"name": "x", "number": "7"}).number
7
"""

from __future__ import annotations

import base64
import datetime
import difflib
import json
import re
from typing import Any

import numpy as np
from google.protobuf import json_format
from google.protobuf.message import EncodeError, Message

from .errors import RequestError
from .message_json import ANY, SPECIAL_JSON, Types, fields_by_name, message_class, sub_message, to_json
from .reflection import is_repeated

__all__ = ["build", "check_required", "field_list", "serialize", "to_json"]
_BYTES, _MESSAGE = 12, 11

# -- requests ------------------------------------------------------------------------------


def build(cls: Any, value: Any = None, fields: dict[str, Any] | None = None, where: str = "", find: Any = None) -> Message:
    """A checked message of class ``cls`` from a message, a dict (proto3 JSON or Python values),
    JSON text or keyword ``fields``; raises ``RequestError`` naming the field at fault.

    ``where`` says which request it is, for the error (e.g. ``"request 2 of /pkg.S/M"``);
    ``find(full_name)`` looks up a type the pool lacks (the server's reflection), for ``Any``.
    """
    descriptor = cls.DESCRIPTOR
    where = where or descriptor.full_name
    if isinstance(value, Message):
        if fields:
            raise RequestError(f"{where}: give a message or keyword fields, not both.")
        if value.DESCRIPTOR.full_name != descriptor.full_name:
            raise RequestError(
                f"{where} takes a {descriptor.full_name}, not a {value.DESCRIPTOR.full_name}.",
                hint=f"Pass a dict of its fields: {field_list(descriptor)}.",
            )
        message = value if type(value) is cls else cls.FromString(value.SerializePartialToString())
        return check_required(message, where)
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RequestError(f"{where}: the request is not JSON: {exc}.", hint='Give e.g. \'{"name": "World"}\'.') from None
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise RequestError(
            f"{where} takes a {descriptor.full_name} (a message, a dict or JSON text), not {type(value).__name__}.",
            hint=f"Its fields: {field_list(descriptor)}.",
        )
    data = {**value, **(fields or {})}
    _refuse_what_the_constructor_bends(data, descriptor, [], where)
    try:  # Python values, as the constructor takes them (fast); what it refuses, the JSON path decides and names
        message = cls(**data)
    except Exception:
        message = None
    if message is not None:
        return check_required(message, where)
    pool = Types(descriptor.file.pool, find)
    raw_anys: list[tuple[list[Any], Any]] = []
    normal = _normalize(data, descriptor, [], pool, raw_anys, where)
    message = cls()
    try:
        json_format.ParseDict(normal, message, descriptor_pool=pool.pool)
    except (json_format.ParseError, ValueError, TypeError, AttributeError) as exc:
        raise _type_error(data, descriptor, pool, where, exc) from None
    for path, (url, raw) in raw_anys:
        target = sub_message(message, path)
        target.type_url, target.value = url, raw
    return check_required(message, where)


_FLOAT, _FLOAT_MAX = 2, 3.4028234663852886e38


def _refuse_what_the_constructor_bends(data: Any, descriptor: Any, path: list[Any], where: str) -> None:
    """Refuse, by field, what protobuf's message constructor would take silently wrong: text or
    bytes for a repeated field (iterated letter by letter), two members of one ``oneof`` (the
    last kept), a number too large for a ``float`` field (sent as infinity). Walks dict keys only."""
    if not isinstance(data, dict) or descriptor.full_name in SPECIAL_JSON or descriptor.full_name == ANY:
        return
    chosen: dict[str, str] = {}
    known = fields_by_name(descriptor)
    for key, value in data.items():
        field = known.get(key) if isinstance(key, str) else None
        if field is None or value is None:
            continue
        here = _path_text([*path, key])
        group = field.containing_oneof
        if group is not None and len(group.fields) > 1:
            if group.name in chosen:
                raise RequestError(
                    f"{where}: {chosen[group.name]!r} and {here!r} are both set, but they are one oneof "
                    f"({group.name!r}), which holds one of them at a time.",
                    hint=f"Keep one of {', '.join(repr(f.name) for f in group.fields)}.",
                    field=here,
                )
            chosen[group.name] = here
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            inner = entry.fields_by_name["value"].message_type
            if inner is not None and isinstance(value, dict):
                for k, v in value.items():
                    _refuse_what_the_constructor_bends(v, inner, [*path, key, k], where)
            continue
        if field.enum_type is not None:
            for item in (value if is_repeated(field) and isinstance(value, (list, tuple)) else [value]):
                _refuse_bent_enum(item, field, here, where)
        if is_repeated(field):
            if isinstance(value, (str, bytes, bytearray, dict)):
                raise RequestError(
                    f"{where}: field {here!r} is repeated, so it takes a list, not one {type(value).__name__}.",
                    hint=f"Give a list: {{{key!r}: [{value!r}]}}." if len(repr(value)) < 60 else "Give a list.",
                    field=here,
                )
            if entry is not None and isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    _refuse_what_the_constructor_bends(item, entry, [*path, key, i], where)
            continue
        if entry is not None:
            _refuse_what_the_constructor_bends(value, entry, [*path, key], where)
        elif field.type == _FLOAT and isinstance(value, (int, float)) and not isinstance(value, bool):
            if abs(value) > _FLOAT_MAX and abs(value) != float("inf"):
                raise RequestError(
                    f"{where}: field {here!r} is a float (32-bit), whose largest value is about 3.4e38, not {value!r}.",
                    hint="Scale the value, or send inf explicitly if that is what you mean.",
                    field=here,
                )


def _refuse_bent_enum(value: Any, field: Any, here: str, where: str) -> None:
    """An enum takes a value's name or its number (a whole number in int32); protobuf truncated
    1.5 to 1, took True as 1 and dropped 2**40 without a word."""
    if isinstance(value, (str, np.str_)) or value is None:
        return
    number = value.item() if isinstance(value, np.generic) else value
    whole = isinstance(number, int) and not isinstance(number, bool)
    if isinstance(number, float) and number.is_integer():
        number, whole = int(number), True
    if not whole or not -(2**31) <= number < 2**31:
        names = ", ".join(v.name for v in field.enum_type.values[:8])
        raise RequestError(
            f"{where}: field {here!r} is the enum {field.enum_type.full_name}, which takes a name or a whole "
            f"number (int32), not {value!r}.",
            hint=f"Its values: {names}{', ...' if len(field.enum_type.values) > 8 else ''}.",
            field=here,
        )


def check_required(message: Message, where: str) -> Message:
    """``message``, or a ``RequestError`` naming the proto2 required fields it lacks."""
    if not message.IsInitialized():
        missing = message.FindInitializationErrors()
        raise RequestError(
            f"{where}: required field {', '.join(map(repr, missing))} not set.",
            hint=f"{message.DESCRIPTOR.full_name} needs every required field: {field_list(message.DESCRIPTOR)}.",
            field=missing[0] if missing else "",
        )
    return message


def serialize(message: Message, where: str) -> bytes:
    """The wire bytes of a checked message (``RequestError`` if protobuf still refuses it)."""
    try:
        data: bytes = message.SerializeToString()
    except EncodeError as exc:
        raise RequestError(f"{where}: cannot serialize: {exc}.") from None
    return data


def field_list(descriptor: Any) -> str:
    """``name (string), n (int32), ...``: the fields a message takes."""
    from .reflection import field_type

    return ", ".join(f"{f.name} ({field_type(f).lstrip('.')})" for f in descriptor.fields) or "none"


def _path_text(path: list[Any]) -> str:
    text = ""
    for step in path:
        text += f"[{step!r}]" if not isinstance(step, str) else (f".{step}" if text else step)
    return text


def _normalize(data: Any, descriptor: Any, path: list[Any], pool: Any, raw_anys: list[Any], where: str) -> Any:
    """``data`` (a dict for message ``descriptor``) as proto3 JSON: unknown keys refused, Python bytes to base64."""
    if descriptor.full_name in _STRUCT_TYPES:
        return _plain(data, 0)
    if not isinstance(data, dict):
        return data  # ParseDict says what is wrong with it
    if descriptor.full_name == ANY:
        return _normalize_any(data, path, pool, raw_anys, where)
    if descriptor.full_name in SPECIAL_JSON:
        return data
    known, out = fields_by_name(descriptor), {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise RequestError(f"{where}: field names are text, not {key!r}.", hint=f"Its fields: {field_list(descriptor)}.")
        field = known.get(key)
        if field is None:
            if key.startswith("[") and key.endswith("]") and descriptor.extension_ranges:  # an extension: "[pkg.ext]"
                out[key] = value
                continue
            near = difflib.get_close_matches(key, [f.name for f in descriptor.fields], n=1)
            guess = f" (did you mean {near[0]!r}?)" if near else ""
            raise RequestError(
                f"{where}: {descriptor.full_name} has no field {key!r}{guess}.",
                hint=f"{descriptor.full_name}'s fields: {field_list(descriptor)}.",
                field=_path_text([*path, key]),
            )
        out[key] = _normalize_value(value, field, [*path, key], pool, raw_anys, where)
    return out


def _normalize_value(value: Any, field: Any, path: list[Any], pool: Any, raw_anys: list[Any], where: str) -> Any:
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        value_field = entry.fields_by_name["value"]
        if not isinstance(value, dict) or value_field.type not in (_BYTES, _MESSAGE):
            return value
        return {k: _normalize_value(v, value_field, [*path, k], pool, raw_anys, where) for k, v in value.items()}
    if field.type not in (_BYTES, _MESSAGE) and not isinstance(value, (datetime.datetime, datetime.timedelta)):
        return value  # scalars go to ParseDict as they are: no walk over long lists of numbers
    if is_repeated(field) and isinstance(value, (list, tuple)):
        single = [_one(v, field, [*path, i], pool, raw_anys, where) for i, v in enumerate(value)]
        return single
    return _one(value, field, path, pool, raw_anys, where)


def _one(value: Any, field: Any, path: list[Any], pool: Any, raw_anys: list[Any], where: str) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)) and (field.type == _BYTES or _is_bytes_value(field.message_type)):
        return base64.b64encode(bytes(value)).decode("ascii")  # as they are: ParseDict decodes base64 back
    if field.type == _MESSAGE and isinstance(value, (datetime.datetime, datetime.timedelta)):
        kind = field.message_type.full_name
        if (kind, isinstance(value, datetime.datetime)) in (("google.protobuf.Timestamp", True), ("google.protobuf.Duration", False)):
            stamp = message_class(field.message_type)()
            stamp.FromDatetime(value) if isinstance(value, datetime.datetime) else stamp.FromTimedelta(value)
            return stamp.ToJsonString()
    if field.type == _MESSAGE and isinstance(value, Message):
        return json_format.MessageToDict(value, preserving_proto_field_name=True, descriptor_pool=pool.pool)
    if field.type == _MESSAGE:
        return _normalize(value, field.message_type, path, pool, raw_anys, where)
    return value


_STRUCT_TYPES = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}


def _plain(value: Any, depth: int) -> Any:
    """A Struct/Value/ListValue's content with numpy scalars and arrays, and tuples, as the JSON
    values they hold (``np.int64(1)`` -> 1, ``np.array([1, 2])`` -> [1, 2]); other values as they are."""
    if depth > 100:
        return value
    if isinstance(value, dict):
        return {k: _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _is_bytes_value(descriptor: Any) -> bool:
    return descriptor is not None and descriptor.full_name == "google.protobuf.BytesValue"


def _normalize_any(data: dict[str, Any], path: list[Any], pool: Any, raw_anys: list[Any], where: str) -> Any:
    """An ``Any`` as JSON: ``{"@type": url, ...fields}``, or grpcurl's ``{"@type": url, "@value": base64}``."""
    url = data.get("@type")
    if url is not None and set(data) == {"@type", "@value"}:
        try:
            raw = base64.b64decode(str(data["@value"]), validate=True)
        except ValueError:
            raise RequestError(f"{where}: '@value' of {_path_text(path)} is not base64.", field=_path_text(path)) from None
        raw_anys.append((path, (str(url), raw)))
        return {}
    target = pool.find(url) if isinstance(url, str) else None
    if target is None:
        return data  # ParseDict names the type it cannot find
    if target.full_name in SPECIAL_JSON or target.full_name == ANY:  # {"@type": ..., "value": its JSON}
        inner = message_class(target)()
        value = data.get("value")
        if isinstance(value, (bytes, bytearray, memoryview)) and _is_bytes_value(target):
            value = base64.b64encode(bytes(value)).decode("ascii")  # Python bytes as they are
        try:
            json_format.ParseDict(value, inner, descriptor_pool=pool.pool)
        except (json_format.ParseError, ValueError, TypeError, AttributeError) as exc:
            raise RequestError(f"{where}: {_path_text(path)} ({url}) does not fit: {exc}.", field=_path_text(path)) from None
        raw_anys.append((path, (url, inner.SerializeToString())))
        return {}
    try:  # built (and checked) on its own, then carried packed, so errors name fields inside it too
        inner = build(message_class(target), {k: v for k, v in data.items() if k != "@type"}, None, where, pool.lookup)
    except RequestError as exc:
        exc.field = ".".join(p for p in (_path_text(path), exc.field) if p)
        raise
    raw_anys.append((path, (url, inner.SerializeToString())))
    return {}


def _type_error(data: dict[str, Any], descriptor: Any, pool: Any, where: str, exc: Exception) -> RequestError:
    """The error for a value protobuf refused: the deepest field that fails on its own is named."""
    path, text = _first_failing(data, descriptor, pool, [])
    field = _path_text(path)
    reason = re.sub(r"\s+", " ", str(text or exc)).strip().rstrip(".")
    return RequestError(
        f"{where}: field {field!r} does not fit: {reason}." if field else f"{where}: {reason}.",
        hint=f"{descriptor.full_name}'s fields: {field_list(descriptor)}. In JSON, 64-bit integers may be "
        "strings, enums are names or numbers, bytes are base64 (or Python bytes in a dict).",
        field=field,
    )


def _first_failing(data: Any, descriptor: Any, pool: Any, path: list[Any]) -> tuple[list[Any], str]:
    if not isinstance(data, dict) or descriptor.full_name in SPECIAL_JSON or descriptor.full_name == ANY:
        return path, ""
    known, cls = fields_by_name(descriptor), message_class(descriptor)
    for key, value in data.items():
        field = known.get(key)
        if field is None:
            continue
        try:
            json_format.ParseDict(_normalize({key: value}, descriptor, [], pool, [], ""), cls(), descriptor_pool=pool.pool)
            continue
        except (json_format.ParseError, ValueError, TypeError, AttributeError, RequestError) as exc:
            problem = str(exc)
        inner = field.message_type
        if inner is not None and not inner.GetOptions().map_entry:
            items = list(enumerate(value)) if is_repeated(field) and isinstance(value, list) else [(None, value)]
            for index, item in items:
                where = [*path, key] if index is None else [*path, key, index]
                found, reason = _first_failing(item, inner, pool, where)
                if reason:
                    return found, reason
        return [*path, key], problem.split(" at ")[0] if " at " in problem else problem
    return path, ""




