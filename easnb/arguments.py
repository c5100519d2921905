"""Every public call's arguments, checked or converted at the boundary, before anything is built or sent.

A number given for a text field becomes its text where that is unambiguous (``version=1`` is
``"1"``; ``version=1.0`` is refused: "1" or "1.0"?); anything else of the wrong type is an
``ArgumentError`` naming the argument, what it takes and an example. The usual call, with
arguments of the right types, passes each check with one type test.

>>> text(1, "version")
'1'
>>> seconds("5", "timeout")
Traceback (most recent call last):
...
easnb.errors.ArgumentError: timeout must be a number of seconds or None (no deadline), not str.
Hint: For example timeout=5 or timeout=0.5.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .channel import Keepalive
from .endpoint import Endpoint
from .errors import ArgumentError
from .refusals import flag as flag  # re-exported: part of this module's surface
from .refusals import refuse as _refuse, shown as _shown

#: The longest timeout taken (about 31 years): gRPC's deadline arithmetic overflows on longer ones.
LONGEST = 1e9


def text(value: Any, argument: str, example: str = "") -> str:
    """A str; an integer becomes its digits. ``None`` is refused (see ``optional_text``)."""
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value))
    raise _refuse(argument, "a str", value, example or (f"{argument}='1'" if argument == "version" else f"{argument}='name'"))


def optional_text(value: Any, argument: str) -> str:
    """``text``, with ``None`` meaning "not given" (``""`` on the wire), as for a version or request id."""
    return "" if value is None else text(value, argument)


def name_or_none(value: Any, argument: str) -> str | None:
    """``text`` or ``None``."""
    return None if value is None else text(value, argument)


def seconds(value: Any, argument: str = "timeout") -> Any:
    """A timeout: ``DEFAULT`` (the connection's), ``None`` (no deadline) or finite seconds >= 0."""
    if type(value) is float or type(value) is int:
        if not 0 <= value <= LONGEST:  # NaN and infinity fail it too
            raise _bad_seconds(argument, value)
        return value
    if value is None or type(value).__name__ == "_Default":  # DEFAULT lives in connection, which imports this
        return value
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        return seconds(float(value), argument)
    raise ArgumentError(
        f"{argument} must be a number of seconds or None (no deadline), not {type(value).__name__}{_shown(value)}.",
        hint=f"For example {argument}=5 or {argument}=0.5.",
        argument=argument,
    )


def _bad_seconds(argument: str, value: float) -> ArgumentError:
    return ArgumentError(
        f"{argument}={value!r}: a timeout is a number of seconds from 0 to {LONGEST:g}.",
        hint=f"Pass {argument}=None for no deadline.",
        argument=argument,
    )


def count(value: object, argument: str, minimum: int = 0) -> int:
    """A whole number >= ``minimum``; a float that is whole (``2.0``) becomes an int."""
    if type(value) is not int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise _refuse(argument, "a whole number", value, f"{argument}={max(minimum, 1) * 8}")
        if not float(value).is_integer():
            raise ArgumentError(f"{argument}={value!r} is not a whole number.", argument=argument, hint="Round it first.")
        value = int(value)
    if value < minimum:
        raise ArgumentError(f"{argument}={value} is below {minimum}, the least it can be.", argument=argument, hint="")
    return value


def choice(value: Any, argument: str, options: tuple[str, ...]) -> str:
    """One of ``options``."""
    if isinstance(value, str) and value in options:
        return value
    listed = " or ".join(repr(o) for o in options)
    raise ArgumentError(
        f"{argument} must be {listed}, not {'another str' if isinstance(value, str) else type(value).__name__}{_shown(value)}.",
        hint=f"For example {argument}={options[0]!r}.",
        argument=argument,
    )


def mapping(value: Any, argument: str, example: str) -> Mapping[str, Any] | None:
    """A dict (any Mapping) or ``None``."""
    if value is None or isinstance(value, Mapping):
        return value
    raise _refuse(argument, "a dict", value, example)


def options(value: Any) -> Mapping[str, Any] | None:
    """gRPC channel options: a dict, or the list of (name, value) pairs gRPC itself takes; each
    value as gRPC reads it (see ``option_value``)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
        pairs = list(value)
    else:
        raise _refuse("options", "a dict of gRPC channel options", value, "options={'grpc.enable_http_proxy': 0}")
    named = [(text(k, "options"), v) for k, v in pairs]
    return {name: option_value(name, v) for name, v in named}


#: gRPC channel options whose value is text even when it is all digits.
_TEXT_OPTIONS = frozenset(f"grpc.{n}" for n in (
    "primary_user_agent", "secondary_user_agent", "default_authority", "ssl_target_name_override",
    "lb_policy_name", "service_config", "http_proxy",
))


def option_value(name: str, value: Any) -> Any:
    """A channel option's value as gRPC reads it: an int (True/False, numpy integers, whole floats
    and text of digits become ints, since gRPC silently ignores an integer option given as text or
    a float: ``{'grpc.enable_http_proxy': '0'}`` left the proxy on), text or bytes."""
    if isinstance(value, (bool, np.bool_, int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, str):
        digits = value.strip()
        if digits.lstrip("+-").isdigit() and digits.isascii() and name not in _TEXT_OPTIONS:
            return int(digits)
        return value
    if isinstance(value, bytes) or type(value).__module__.startswith("grpc"):
        return value
    raise ArgumentError(
        f"options[{name!r}] must be a whole number or text, not {type(value).__name__}{_shown(value)}.",
        hint="gRPC channel options are ints (0 or 1 for off or on) or text, e.g. options={'grpc.enable_http_proxy': 0}.",
        argument="options",
    )


def outputs(value: Any) -> Any:
    """``None`` (every output), one name, names, or a dict of name -> parameters."""
    if value is None:
        return None
    if isinstance(value, (str, int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return (text(value, "outputs"),)
    if isinstance(value, Mapping):
        for name, params in value.items():
            if params is not None and not isinstance(params, Mapping):
                raise ArgumentError(
                    f"outputs[{name!r}] must be a dict of that output's parameters (or None), not "
                    f"{type(params).__name__}{_shown(params)}.",
                    hint="For example outputs={'label': {'binary_data': True}}, or outputs=['label'] for names only.",
                    argument="outputs",
                )
        return {text(k, "outputs"): v for k, v in value.items()}
    if isinstance(value, Iterable) and not isinstance(value, (bytes, bytearray)):
        return [text(v, "outputs") for v in value]
    raise _refuse("outputs", "an output name or a list of names", value, "outputs=['label']")


def inputs(value: Any) -> Any:
    """A dict of name -> array, a DataFrame, or (name, array) pairs; names made str."""
    if type(value) is dict or hasattr(value, "columns") and hasattr(value, "iloc"):
        return value
    if isinstance(value, Mapping):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        return [(text(n, "inputs"), v) for n, v in value]
    if hasattr(value, "to_frame") and hasattr(value, "iloc"):  # a pandas Series: a row or a column?
        raise ArgumentError(
            "inputs must be a dict of input name -> array, or a DataFrame, not a Series (one row, or one column?).",
            hint="One row (df.iloc[0]): pass s.to_frame().T, or df.iloc[[0]]; one column named after an input: "
            "pass s.to_frame(), or {s.name: s.to_numpy()}.",
            argument="inputs",
        )
    if isinstance(value, np.ndarray):
        raise _refuse("inputs", "a dict of input name -> array, or a DataFrame", value,
                      "inputs={'INPUT0': x} (the model's metadata names its inputs: conn.model_metadata(model))")
    raise _refuse("inputs", "a dict of input name -> array, or a DataFrame", value, "inputs={'INPUT0': x}")


def columns(value: Any) -> Mapping[str, list[Any]] | None:
    """``None`` or a dict of input name -> the list of columns that fill it, in order."""
    if value is None:
        return None
    if isinstance(value, Mapping) and all(isinstance(v, (list, tuple)) for v in value.values()):
        return {text(k, "columns"): list(v) for k, v in value.items()}
    raise _refuse("columns", "a dict of input name -> list of columns", value, "columns={'features': ['a', 'b']}")


def paths(value: Any, argument: str) -> tuple[str | Path, ...]:
    """One path or several, as a tuple (a lone str is one path, not its letters)."""
    if isinstance(value, (str, Path)):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, Path)) for v in value):
        return tuple(value)
    raise _refuse(argument, "a path or a list of paths", value, f"{argument}=['protos/']")


# -- one line per public method: the usual call passes on the first test ---------------------------


def channel(value: Any, aio: bool) -> Any:
    """A channel handed to a connection: ``None`` (open one), else a ``grpc.Channel`` for ``easnb.connect`` or
    a ``grpc.aio.Channel`` for ``easnb.aio.connect`` (the other kind fails at its first call, far from here)."""
    import grpc
    import grpc.aio

    kind = grpc.aio.Channel if aio else grpc.Channel
    if value is None or isinstance(value, kind):
        return value
    wants, example = ("a grpc.aio.Channel", "channel=grpc.aio.insecure_channel(...)") if aio else (
        "a grpc.Channel (sync; easnb.aio.connect takes grpc.aio ones)", "channel=grpc.insecure_channel(...)")
    raise _refuse("channel", wants, value, example)


def model_call(name: Any, version: Any, timeout: Any, headers: Any, argument: str = "name") -> tuple[str, str, Any]:
    """``model_ready``, ``model_metadata``, ``model_statistics``: (name, version, timeout)."""
    if type(name) is str and type(version) is str and headers is None:
        return name, version, seconds(timeout)
    mapping(headers, "headers", "headers={'x-request-id': '42'}")
    return text(name, argument), optional_text(version, "version"), seconds(timeout)


def server_call(timeout: Any, headers: Any) -> Any:
    """``live``, ``ready``, ``server_metadata``: the timeout."""
    if headers is not None:
        mapping(headers, "headers", "headers={'x-request-id': '42'}")
    return seconds(timeout)


def infer_call(
    model: Any, inputs_: Any, outputs_: Any, version: Any, parameters: Any, request_id: Any,
    timeout: Any, headers: Any, raw: Any, retries: Any, copy: Any, bytes_as_str: Any, columns_: Any = None,
) -> tuple[str, Any, Any, str, str, Any, int]:
    """``infer``: (model, inputs, outputs, version, request_id, timeout, retries), checked and converted."""
    if (
        type(model) is str and type(inputs_) is dict and outputs_ is None and type(version) is str and parameters is None
        and type(request_id) is str and headers is None and raw is True and retries == 0 and copy is False
        and bytes_as_str is False and columns_ is None
    ):
        return model, inputs_, None, version, request_id, seconds(timeout), 0
    mapping(parameters, "parameters", "parameters={'priority': 1}")
    mapping(headers, "headers", "headers={'x-request-id': '42'}")
    flag(raw, "raw"), flag(copy, "copy"), flag(bytes_as_str, "bytes_as_str"), columns(columns_)
    return (
        text(model, "model"), inputs(inputs_), outputs(outputs_), optional_text(version, "version"),
        optional_text(request_id, "request_id"), seconds(timeout), count(retries, "retries"),
    )


def service_call(proto_or_name: Any, name: Any, include: Any) -> tuple[str | Path, str | None, tuple[str | Path, ...]]:
    """``service``: (proto_or_name, name, include)."""
    if not isinstance(proto_or_name, (str, Path)):
        raise _refuse("proto_or_name", "a service name or a .proto path", proto_or_name, "'helloworld.GreeterService'")
    return proto_or_name, name_or_none(name, "name"), () if include == () else paths(include, "include")


def connection_call(
    endpoint: Any, timeout: Any, headers: Any, tls: Any, root_certificates: Any, keepalive: Any,
    max_message_bytes: Any, retries: Any, options_: Any,
) -> tuple[Any, bool | None, int, int, Mapping[str, Any] | None]:
    """``connect()`` and the connections' constructors: (timeout, tls, max_message_bytes, retries, options)."""
    if not isinstance(endpoint, (str, Endpoint)):
        raise _refuse("endpoint", "a str (host:port, or the console address)", endpoint, "endpoint='localhost:50051'")
    mapping(headers, "headers", "headers={'x-request-id': '42'}")
    if root_certificates is not None and not isinstance(root_certificates, (bytes, str, Path)):
        raise _refuse("root_certificates", "PEM bytes or a PEM file's path", root_certificates, "root_certificates='ca.pem'")
    if not isinstance(keepalive, Keepalive):
        raise _refuse("keepalive", "an easnb.Keepalive", keepalive, "keepalive=easnb.Keepalive(time_s=60)")
    seconds(keepalive.time_s, "Keepalive.time_s"), seconds(keepalive.timeout_s, "Keepalive.timeout_s")
    return (
        seconds(timeout), None if tls is None else flag(tls, "tls"), count(max_message_bytes, "max_message_bytes", -1),
        count(retries, "retries"), options(options_),
    )


def wait_call(model: Any, timeout: Any, progress: Any) -> tuple[str | None, float, bool]:
    """``wait_until_ready``: (model, timeout, progress)."""
    limit = seconds(timeout)
    if limit is None or type(limit).__name__ == "_Default":
        raise _refuse("timeout", "a number of seconds", timeout, "timeout=600")
    return name_or_none(model, "model"), limit, flag(progress, "progress")


def frame_call(
    model: Any, frame: Any, batch_size: Any, concurrency: Any, outputs_: Any, retries: Any, progress: Any,
    errors: Any, version: Any, timeout: Any, retry_deadline: Any, parameters: Any, headers: Any, columns_: Any,
) -> tuple[str, int, int, Any, int, bool, str, str, Any, bool, Any]:
    """``infer_frame``: (model, batch_size, concurrency, outputs, retries, progress, errors, version,
    timeout, retry_deadline, columns)."""
    if not (hasattr(frame, "columns") and hasattr(frame, "iloc")):
        raise _refuse("frame", "a pandas DataFrame", frame, "frame=pd.DataFrame(x, columns=[...])")
    mapping(parameters, "parameters", "parameters={'priority': 1}")
    mapping(headers, "headers", "headers={'x-request-id': '42'}")
    return (
        text(model, "model"), count(batch_size, "batch_size", 1), count(concurrency, "concurrency", 1),
        outputs(outputs_), count(retries, "retries"), flag(progress, "progress"),
        choice(errors, "errors", ("raise", "keep")), optional_text(version, "version"), seconds(timeout),
        flag(retry_deadline, "retry_deadline"), columns(columns_),
    )


def number(value: Any, argument: str, minimum: float = 0.0) -> float:
    """A finite real number >= ``minimum`` (numpy's too), as a float."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        if np.isfinite(value) and value >= minimum:
            return float(value)
        raise ArgumentError(f"{argument}={value!r}: give a finite number, at least {minimum:g}.", argument=argument, hint="")
    raise _refuse(argument, "a number", value, f"{argument}=1.0")


def levels(value: Any, argument: str) -> list[float] | None:
    """``None``, or one number or a list of them (load levels); a lone number is a list of one."""
    if value is None:
        return None
    items = [value] if isinstance(value, (int, float, np.integer, np.floating)) else value
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise _refuse(argument, "a list of numbers", value, f"{argument}=[1, 4, 16]")
    for v in items:  # the type here; the values are the caller's to judge (load_test says "positive")
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise _refuse(argument, "a list of numbers", value, f"{argument}=[1, 4, 16]")
    return [float(v) for v in items]


def load_call(
    concurrency: Any, rate: Any, duration: Any, warmup: Any, batch_size: Any, version: Any,
    stop_error_rate: Any, timeout: Any, max_in_flight: Any, progress: Any,
) -> tuple[Any, ...]:
    """``load_test``: (concurrency, rate, seconds, warmup, batch_size, version, stop_error_rate, timeout,
    max_in_flight, progress)."""
    return (
        levels(concurrency, "concurrency"), levels(rate, "rate"), number(duration, "seconds"), number(warmup, "warmup"),
        count(batch_size, "batch_size", 1), optional_text(version, "version"),
        None if stop_error_rate is None else number(stop_error_rate, "stop_error_rate"), seconds(timeout),
        count(max_in_flight, "max_in_flight", 1), flag(progress, "progress"),
    )


def compare_call(
    model: Any, model_b: Any, version_a: Any, version_b: Any, rtol: Any, atol: Any, batch_size: Any,
    latency_samples: Any, progress: Any,
) -> tuple[Any, ...]:
    """``compare``: (model, model_b, version_a, version_b, rtol, atol, batch_size, latency_samples, progress)."""
    return (
        text(model, "model"), name_or_none(model_b, "model_b"), optional_text(version_a, "version_a"),
        optional_text(version_b, "version_b"), number(rtol, "rtol"), number(atol, "atol"),
        count(batch_size, "batch_size", 1), count(latency_samples, "latency_samples"), flag(progress, "progress"),
    )


def keywords(function: Any, given: Mapping[str, Any], call: str) -> None:
    """Refuse keyword arguments ``function`` does not take, naming the nearest it does (a typo's fix)."""
    import difflib
    import inspect

    parameters = inspect.signature(function).parameters
    known = [n for n, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(str(name), known, 1)
            raise ArgumentError(
                f"{call}() takes no argument {name!r}" + (f"; did you mean {close[0]!r}?" if close else "."),
                hint=f"It takes {', '.join(n for n in known if n not in ('self', 'conn'))}.",
                argument=str(name),
            )
