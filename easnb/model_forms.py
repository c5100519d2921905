"""What every tab's form shares: the Model box and its names, values typed as JSON or CSV, examples.

>>> parse_values("1,2\\n3,4", "FP32").shape
(2, 2)
"""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

from . import widgets as _widgets  # noqa: F401, I001 - first, for its message when ipywidgets is missing
import ipywidgets as w
import numpy as np

from .errors import EasnbError
from .metadata import ModelMetadata
from .widgets import connection_of


def model_names(source: Any, models: list[str] | None = None) -> list[str]:
    """Names to offer: the given ones, then the server's repository index (or the names used so far)."""
    try:
        known = connection_of(source).known_models()
    except EasnbError:
        known = []
    return list(dict.fromkeys([*(models or []), *known]))


def model_box(source: Any, model: str, models: list[str] | None) -> w.Combobox:
    """A Model box offering ``model_names``; any other name may be typed."""
    return w.Combobox(
        value=model, options=model_names(source, models), placeholder="model name", description="Model",
        ensure_option=False, continuous_update=False,
    )


def parse_values(text: str, datatype: str) -> Any:
    """JSON (a list, or one value) or CSV rows, as an array for ``datatype``."""
    text = text.strip()
    if not text:
        raise EasnbError("An input box is empty.", hint="Type JSON like [[1, 2, 3, 4]] or CSV rows, or press Example.")
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        import pandas as pd

        values = pd.read_csv(StringIO(text), header=None).to_numpy()
        if values.shape[1] == 1:
            values = values[:, 0]
    if datatype == "BYTES":
        return np.array(values, dtype=object)
    return np.asarray(values)


def example_text(meta: ModelMetadata) -> dict[str, str]:
    """A valid sample per input as JSON text: variable dimensions as 1, the input's datatype."""
    texts = {}
    for name, array in meta.example_inputs(rows=1).items():
        datatype = meta.input(name).datatype
        if datatype == "BYTES":
            values: Any = np.full(array.shape, "example", dtype=object).tolist()
        elif datatype == "BOOL":
            values = array.astype(bool).tolist()
        else:
            values = (array + 1).tolist()
        texts[name] = json.dumps(values)
    return texts
