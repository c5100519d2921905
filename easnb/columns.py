"""Feature names: which DataFrame column feeds which element of a model's input.

Where both sides name the features, names decide. A model names the columns of an input in its
metadata properties (the convention easnb reads; values are comma-separated, or a JSON list of
strings for names that hold commas):

- ``properties["features"]`` (or ``"feature_names"``): the columns of the model's only input,
  as the demo's iris does (``"sepal_length,sepal_width,petal_length,petal_width"``);
- ``properties["INPUT.features"]``: the columns of input ``INPUT`` of a model with several.

A model that takes one input per column (MLServer's pandas codec, KServe's column-per-input
models) names its features by its inputs, which are matched by name. Where the model names
nothing, position decides and ``ColumnOrderWarning`` says which column went where, once per
connection (which keeps the model's metadata) and order of columns.

Names come from the server, which may quote the token it was sent: the functions that put them in
a message take the connection's token and take it out (``easnb.redaction``) of a long name before
cutting it short (which could keep a piece of it), and of the whole warning.

>>> meta = ModelMetadata("m", (), "", (TensorMetadata("x", "FP32", (-1, 2)),), (), {"features": "a,b"})
>>> declared_features(meta, meta.inputs[0])
['a', 'b']
"""

from __future__ import annotations

import json
import reprlib
import sys
import warnings
from collections.abc import Sequence
from types import FrameType
from typing import Any

from .errors import TensorError
from .metadata import ModelMetadata, TensorMetadata
from .redaction import redact

#: The longest property value read as feature names (a server's metadata is data: bound it).
MAX_TEXT = 1 << 20
#: How many column pairs a message spells out before it says "and N more".
SHOWN = 12
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80


class ColumnOrderWarning(UserWarning):
    """DataFrame columns were matched to a model's input by position, not by name."""


def declared_features(meta: ModelMetadata, tensor: TensorMetadata) -> list[str] | None:
    """The column names ``meta`` declares for ``tensor`` (a ``[-1, k]`` input), or ``None``.

    Names that cannot be the input's columns (a count other than its width, repeated or
    empty names) are not used: the model then counts as naming nothing.
    """
    if len(tensor.shape) != 2:
        return None
    keys = [f"{tensor.name}.features"]
    if len(meta.inputs) == 1:
        keys += ["features", "feature_names"]
    for key in keys:
        text = meta.properties.get(key)
        if isinstance(text, str) and text and len(text) <= MAX_TEXT:
            names = _parse(text)
            width = tensor.shape[1]
            if names and len(set(names)) == len(names) and all(names) and width in (-1, len(names)):
                return names
    return None


def _parse(text: str) -> list[str] | None:
    if text.lstrip().startswith("["):
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):  # a server's text: nested a million deep is not a list of names
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None
    return [part.strip() for part in text.split(",")]


def named(columns: Sequence[Any]) -> bool:
    """Whether a frame's columns are names (strings), as scikit-learn counts feature names."""
    return all(isinstance(c, str) for c in columns)


def _shown(value: Any, token: Any) -> str:
    """``value``'s repr, cut short if long; a cut one loses the token first (a whole one the message's own redaction finds)."""
    short = _SHORT.repr(value)
    if token is None or not isinstance(value, str) or short == repr(value):
        return short
    return _SHORT.repr(redact(value, token))


def _listed(names: Sequence[Any], token: Any) -> str:
    shown = ", ".join(_shown(n, token) for n in names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _loose(name: Any) -> str:
    """A name without case, spaces, '-' and '_' (how 'Sepal Length' and 'sepal_length' are the same)."""
    return "".join(ch for ch in str(name).casefold() if ch not in " -_\t")


def mismatch(meta: ModelMetadata, tensor: TensorMetadata, names: list[str], columns: list[Any], token: Any) -> TensorError:
    """The error for a frame whose columns are not the features the model names; a long name is cut
    without a piece of ``token`` (``frames`` scrubs the whole error of it)."""
    missing = [n for n in names if n not in columns]
    extra = [c for c in columns if c not in names]
    parts = ([f"missing {_listed(missing, token)}"] if missing else []) + ([f"not features: {_listed(extra, token)}"] if extra else [])
    detail = "; ".join(parts) or "in another number"
    loose = {_loose(n): n for n in names}
    renames = {c: loose[_loose(c)] for c in extra if isinstance(c, str) and _loose(c) in loose and loose[_loose(c)] in missing}
    if missing and renames and len(renames) == len(missing):  # ' sepal_length', 'Sepal Length': spaces or case
        shown = dict(list(renames.items())[:SHOWN])
        hint = "The columns differ from the feature names only in case, spaces or '-'/'_': rename them, "
        hint += f"df.rename(columns={shown!r})" + (" (and the rest likewise)." if len(renames) > SHOWN else ".")
    elif missing:
        hint = "Rename the columns to the model's feature names (df.rename(columns={...})), or pass "
        hint += f"columns={{{tensor.name!r}: [...]}} to say which columns fill the input, in order."
    else:
        hint = f"Select the model's features: df[{names!r}]." if len(names) <= SHOWN else "Select the model's features."
    return TensorError(
        f"Model {meta.name!r} names the features of input {tensor.name!r} as {_listed(names, token)}, "
        f"but the DataFrame's columns are {_listed(columns, token)} ({detail}).",
        hint=hint,
    )


def warn_positional(
    meta: ModelMetadata, tensor: TensorMetadata, columns: list[Any], names: list[str] | None, token: Any
) -> None:
    """Say once which column went where, when columns fill an input by position (``token``: the
    connection's ``Token`` or ``None``, never in the warning)."""
    if names is None and list(columns) == list(range(len(columns))):
        return  # neither side names anything: position is all there is
    if names is None:
        why = f"Model {meta.name!r} names no features for input {tensor.name!r}"
        pairs = [f"{_shown(c, token)} -> {tensor.name}[:, {i}]" for i, c in enumerate(columns[:SHOWN])]
    else:
        why = f"The DataFrame's columns are not names, but model {meta.name!r} names its features"
        pairs = [f"{_shown(c, token)} -> {_shown(n, token)}" for c, n in zip(columns[:SHOWN], names)]
    more = f", and {len(columns) - SHOWN} more" if len(columns) > SHOWN else ""
    message = (
        f"{why}, so the DataFrame's columns fill it by position: {', '.join(pairs)}{more}. "
        f"Pass columns={{{tensor.name!r}: [...]}} to state the order (which also silences this warning)."
    )
    if message in meta.notes:  # said once per model and connection (which keeps one metadata per model)
        return
    if len(meta.notes) < 64:
        meta.notes.add(message)
    warnings.warn(redact(message, token), ColumnOrderWarning, stacklevel=_user_level())


def _user_level() -> int:
    """The ``stacklevel`` of the first frame outside easnb, so the warning points at the user's line."""
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "easnb":
        frame, level = frame.f_back, level + 1
    return level
