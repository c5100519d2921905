"""DataFrames in and out: columns matched to a model's inputs, outputs made into columns.

>>> import pandas as pd
>>> meta = ModelMetadata("m", (), "", (TensorMetadata("x", "FP32", (-1, 2)),), ())
>>> frame_to_inputs(pd.DataFrame({"x_0": [1.0], "x_1": [2.0]}), meta, token=None)["x"].data.tolist()
[[1.0, 2.0]]
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from .columns import declared_features, mismatch, named, warn_positional
from .display import shape_text
from .dtypes import from_pandas
from .errors import EasnbError, TensorError, scrub
from .metadata import ModelMetadata, TensorMetadata
from .value_protocols import Outputs
from .tensors import Tensor

#: The widest an output declared in metadata becomes in a frame of no rows (wider: one column).
MAX_COLUMNS = 4096

if TYPE_CHECKING:
    import pandas as pd


def is_frame(value: Any) -> bool:
    """Whether ``value`` is a pandas DataFrame (checked without importing pandas)."""
    return hasattr(value, "columns") and hasattr(value, "iloc")


def _describe(inputs: tuple[TensorMetadata, ...]) -> str:
    return ", ".join(f"{t.name} {t.datatype} {shape_text(t.shape)}" for t in inputs) or "none"


def _grouped(columns: list[str], name: str) -> list[str]:
    """``name_0, name_1, ...`` in index order, when they run from 0 without a gap."""
    pattern = re.compile(rf"^{re.escape(name)}_(\d+)$")
    found = {int(m.group(1)): c for c in columns if (m := pattern.match(c))}
    return [found[i] for i in range(len(found))] if found and set(found) == set(range(len(found))) else []


def column_array(series: pd.Series, name: str, datatype: str = "") -> np.ndarray:
    """A column as a plain numpy array; nullable, Arrow, categorical and numpy 2 string dtypes
    converted and missing values checked as ``easnb.dtypes`` says (refusals name the column)."""
    if type(series.dtype) is np.dtype and series.dtype.kind != "T":
        plain: np.ndarray = series.to_numpy()
        return plain
    return from_pandas(series, name, datatype, what="Column")


def _matrix(frame: pd.DataFrame, columns: list[Any], datatype: str) -> np.ndarray:
    """Several columns stacked into ``[rows, k]``, row-major so that any run of rows is sent without a copy."""
    if all(isinstance(frame[c].dtype, np.dtype) for c in columns):
        return np.ascontiguousarray(frame[columns].to_numpy())  # pandas hands back column-major
    return np.column_stack([column_array(frame[c], str(c), datatype) for c in columns])


def _column_values(frame: pd.DataFrame, column: str, meta: TensorMetadata) -> np.ndarray:
    values = column_array(frame[column], str(column), meta.datatype)
    if len(meta.shape) > 1 and values.dtype == object and len(values) and _is_sequence(values[0]):
        try:  # a column of arrays or lists
            values = np.stack([np.asarray(v) for v in values])
        except ValueError as exc:
            raise TensorError(f"Column {column!r}: the arrays in it differ in shape ({exc}).") from None
    if values.ndim == 1 and len(meta.shape) > 1 and all(d == 1 for d in meta.shape[1:]):
        values = values.reshape(len(values), *meta.shape[1:])  # one value per row, for a [-1, 1] input
    return values


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def frame_to_inputs(
    frame: pd.DataFrame, meta: ModelMetadata, columns: dict[str, list[str]] | None = None, *, token: Any
) -> dict[str, Tensor]:
    """One tensor per model input, from the frame's columns.

    An input ``x`` comes from column ``x``, from columns ``x_0, x_1, ...`` stacked
    into ``[-1, k]``, or, for a model with one ``[-1, k]`` input, from exactly ``k``
    columns in order. Values are converted to the input's datatype, refusing lossy
    conversions. Missing and extra columns are reported by name. A model that declares
    no inputs gets one input per column, unless ``columns`` maps input names to the
    columns stacked into each (``{"predict": ["a", "b", "c", "d"]}`` makes one ``[-1, 4]`` input).

    ``token`` is the connection's (a ``Token``, or ``None``): ``meta``'s names are the server's, which
    may quote it, and no ``TensorError`` or ``ColumnOrderWarning`` from here holds it.
    """
    try:
        if columns is not None:
            return _mapped(frame, meta, columns)
        names = [str(c) for c in frame.columns]
        if len(set(names)) != len(names):
            raise TensorError("The DataFrame has repeated column names; make them unique.")
        if not meta.inputs:  # a model that declares no inputs (echo-like) takes each column as one
            return {c: Tensor(column_array(frame[original], c)) for c, original in zip(names, frame.columns)}
        return _matched(frame, meta, names, token)
    except EasnbError as exc:
        scrub(exc, token)
        raise


def frames_in(inputs: Any, meta: ModelMetadata, *, token: Any) -> dict[str, Any]:
    """``inputs`` (name -> value) with each DataFrame value made one tensor, its columns matched to the
    features the model names for that input (by position, said once, where it names none); ``token``
    as for ``frame_to_inputs``."""
    try:
        return _frames_in(inputs, meta, token)
    except EasnbError as exc:
        scrub(exc, token)
        raise


def _frames_in(inputs: Any, meta: ModelMetadata, token: Any) -> dict[str, Any]:
    items = inputs.items() if hasattr(inputs, "items") else inputs
    declared = {t.name: t for t in meta.inputs}
    out: dict[str, Any] = {}
    for name, value in items:
        tensor = declared.get(str(name))
        if not is_frame(value):
            out[name] = value
        elif tensor is None:  # the model declares no such input: nothing to match the columns to
            out[name] = np.column_stack([column_array(value[c], str(c)) for c in value.columns]) if len(value.columns) else value.to_numpy()
        else:
            names = declared_features(meta, tensor)
            one = ModelMetadata(meta.name, meta.versions, meta.platform, (tensor,), (),
                                {f"{tensor.name}.features": json.dumps(names)} if names else {})
            object.__setattr__(one, "notes", meta.notes)  # said once per model, whichever way it came
            out[name] = _matched(value, one, [str(c) for c in value.columns], token)[tensor.name]
    return out


def _mapped(frame: pd.DataFrame, meta: ModelMetadata, columns: dict[str, list[str]]) -> dict[str, Tensor]:
    declared = {t.name: t for t in meta.inputs}
    unknown = [c for group in columns.values() for c in group if c not in frame.columns]
    if unknown:
        raise TensorError(f"columns= names {', '.join(map(repr, unknown))}, which the DataFrame lacks.")
    if declared and set(declared) - set(columns):
        missing = ", ".join(map(repr, sorted(set(declared) - set(columns))))
        raise TensorError(f"columns= gives no columns for input {missing} of model {meta.name!r}.")
    tensors = {}
    for name, group in columns.items():
        datatype = declared[name].datatype if name in declared else ""
        tensors[name] = Tensor(_matrix(frame, list(group), datatype), datatype or None)
    return tensors


def _matched(frame: pd.DataFrame, meta: ModelMetadata, columns: list[str], token: Any) -> dict[str, Tensor]:
    used: set[str] = set()
    tensors: dict[str, Tensor] = {}
    missing = []
    originals = list(frame.columns)
    for tensor in meta.inputs:
        names = declared_features(meta, tensor)
        if tensor.name in columns:
            values = _column_values(frame, originals[columns.index(tensor.name)], tensor)
            used.add(tensor.name)
        elif group := _grouped(columns, tensor.name):
            if names is not None and set(names) & set(columns):
                raise TensorError(
                    f"The DataFrame gives input {tensor.name!r} twice: as columns {', '.join(map(repr, group))} and "
                    f"as the model's feature names {', '.join(map(repr, [n for n in names if n in columns]))}.",
                    hint=f"Keep one set of columns, e.g. df[{names!r}].",
                )
            values = _matrix(frame, [originals[columns.index(c)] for c in group], tensor.datatype)
            used.update(group)
        elif names is not None and named(originals):  # both sides name the features: names decide
            if not set(names) <= set(columns) or (len(meta.inputs) == 1 and len(names) != len(columns)):
                raise mismatch(meta, tensor, names, columns, token)
            values = _matrix(frame, [originals[columns.index(c)] for c in names], tensor.datatype)
            used.update(names)
        elif len(meta.inputs) == 1 and len(tensor.shape) == 2 and tensor.shape[1] in (len(columns), -1):
            if names is not None and len(names) != len(columns):
                raise mismatch(meta, tensor, names, originals, token)
            warn_positional(meta, tensor, originals, names, token)
            values = _matrix(frame, originals, tensor.datatype)
            used.update(columns)
        else:
            missing.append(tensor.name)
            continue
        _check_width(tensor, values)
        tensors[tensor.name] = Tensor(values, tensor.datatype)
    if missing:
        raise TensorError(
            f"No column for input {', '.join(map(repr, missing))} of model {meta.name!r}. "
            f"Columns are {', '.join(map(repr, columns))}; inputs are {_describe(meta.inputs)}.",
            hint="Name a column after the input, or name columns INPUT_0, INPUT_1, ... for a [-1, k] input.",
        )
    extra = [c for c in columns if c not in used]
    if extra:
        raise TensorError(
            f"Column {', '.join(map(repr, extra))} matches no input of model {meta.name!r} "
            f"(inputs: {_describe(meta.inputs)}).",
            hint="Select the columns the model takes, e.g. df[[...]].",
        )
    return tensors


def _check_width(tensor: TensorMetadata, values: np.ndarray) -> None:
    want = tensor.shape[1:]
    got = values.shape[1:]
    fits = len(want) == len(got) and all(w < 0 or w == g for w, g in zip(want, got))
    if not fits:
        raise TensorError(
            f"Input {tensor.name!r} takes rows of shape {shape_text(want)} but the DataFrame gives {list(got)}.",
            hint="Check which columns feed this input.",
        )


def empty_frame(meta: ModelMetadata, outputs: Any = None) -> pd.DataFrame:
    """The 0-row frame of the columns ``result_to_frame`` makes from ``meta``'s outputs (``outputs`` only, if given).

    An output whose row shape the metadata leaves variable is one column; one the model does not
    declare (it declares none, say) is one column of objects.
    """
    import pandas as pd

    from .dtypes import DATATYPES

    text = pd.Series(["text"]).dtype  # the dtype pandas gives a column of str (object, or str in pandas 3)
    declared = {t.name: t for t in meta.outputs}
    if outputs is None:
        wanted = list(declared)
    else:
        wanted = [outputs] if isinstance(outputs, str) else [str(n) for n in outputs]
    columns: dict[str, Any] = {}
    for name in wanted:
        tensor = declared.get(name)
        row = tuple(tensor.shape[1:]) if tensor is not None else (-1,)
        known = DATATYPES.get(tensor.datatype) if tensor is not None else None
        dtype = np.dtype(object) if known is None or known.name == "BYTES" else known.dtype
        dtype = np.dtype(np.float32) if known is not None and known.name == "BF16" else dtype
        width = math.prod(row) if row and all(d >= 0 for d in row) else 0
        width = width if len(columns) + width <= MAX_COLUMNS else 0  # a server's [-1, 2**40]: one column
        for column in [f"{name}_{i}" for i in range(width)] if width and row else [name]:
            columns[column] = pd.Series([], dtype=text) if known is not None and known.name == "BYTES" else np.empty(0, dtype)
    return pd.DataFrame(columns)


def _text_column(array: np.ndarray) -> np.ndarray:
    try:
        return np.array([v.decode("utf-8") if isinstance(v, bytes) else v for v in array], dtype=object)
    except UnicodeDecodeError:
        return array


def result_to_frame(result: Outputs, long: bool = False, arrays: bool = False, share: bool = False) -> pd.DataFrame:
    """The outputs of ``result`` as a DataFrame.

    An output of shape ``[n]`` is one column; ``[n, k, ...]`` becomes columns
    ``NAME_0 ... NAME_{k-1}`` (elements flattened), or one column of arrays with
    ``arrays=True``. BYTES become str columns (bytes where not UTF-8). Outputs whose
    first dimensions differ raise ``TensorError`` unless ``long=True``, which gives
    a tidy table of (output, index, value). ``share=True`` lets a single numeric output
    become the frame without a copy (for arrays the caller owns and hands over).
    """
    import pandas as pd

    if share and not long and not arrays and len(result.outputs) == 1:
        (name, array), = result.outputs.items()
        if array.ndim >= 2 and array.dtype != object:
            flat: np.ndarray = array.reshape(array.shape[0], -1)
            return pd.DataFrame(flat, columns=[f"{name}_{i}" for i in range(flat.shape[1])], copy=False)

    if long:
        parts = []
        for name, array in result.outputs.items():
            flat = array.reshape(-1)
            values = _text_column(flat) if flat.dtype == object else flat
            parts.append(pd.DataFrame({"output": name, "index": np.arange(flat.size), "value": values}))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["output", "index", "value"])
    rows = {n: (a.shape[0] if a.ndim else 1) for n, a in result.outputs.items()}
    if len(set(rows.values())) > 1:
        sizes = ", ".join(f"{n}: {r}" for n, r in rows.items())
        raise TensorError(
            f"The outputs have different first dimensions ({sizes}), so they do not make one table.",
            hint="Use result.to_frame(long=True) for a tidy (output, index, value) table.",
        )
    columns: dict[str, Any] = {}
    for name, array in result.outputs.items():
        if array.ndim == 0:
            array = array.reshape(1)
        if array.ndim == 1:
            columns[name] = _text_column(array) if array.dtype == object else array
        elif arrays:
            columns[name] = list(array)
        else:
            flat = array.reshape(array.shape[0], -1)
            for i in range(flat.shape[1]):
                column = flat[:, i]
                columns[f"{name}_{i}"] = _text_column(column) if column.dtype == object else column
    return pd.DataFrame(columns)
