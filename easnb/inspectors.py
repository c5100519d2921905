"""Inspectors: the server, a model, and an inference form, alone or as tabs of ``inspect(conn)``.

>>> easnb.inspect(conn)                       # doctest: +SKIP
>>> InferInspector(conn, "iris").result       # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from io import StringIO
from typing import Any

import ipywidgets as w
import numpy as np

from . import display
from .display import error_html
from .connection import Connection
from .demo.models import DEMO_MODELS
from .errors import EasnbError
from .results import InferResult, ModelMetadata
from .tensors import Tensor
from .widgets import Background, light, lights


class _Form(w.VBox):
    """A form whose button runs work in the background and shows the answer or the error."""

    def __init__(self, controls: list[w.Widget], label: str) -> None:
        self.button = w.Button(description=label, button_style="primary")
        self.button.on_click(lambda _: self.run())
        self.output = w.HTML()
        self._background = Background("easnb-inspector")
        super().__init__([*controls, self.button, self.output])

    def run(self, wait: bool = False) -> None:
        """Do what the button does; ``wait=True`` blocks until done."""
        if self._background.busy:
            return
        self.button.disabled = True
        label = self.button.description
        self.button.description = "Working\u2026"

        def target() -> None:
            try:
                self.output.value = self.work()
            except Exception as exc:
                self.output.value = error_html(exc)
            finally:
                self.button.description = label
                self.button.disabled = False

        self._background.start(target, wait)

    def wait(self, timeout: float | None = None) -> None:
        self._background.wait(timeout)

    def work(self) -> str:  # pragma: no cover - every form overrides it
        raise NotImplementedError


class ServerInspector(_Form):
    """Live, ready, and the server's metadata."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        super().__init__([], "Refresh")
        self.run()

    def work(self) -> str:
        c = self.connection
        return f"<div>{lights(c.live(), c.ready())}</div>" + display.server_html(c.server_metadata())


def _model_names(connection: Connection, models: list[str] | None) -> list[str]:
    """The names to offer: given ones, the demo's, and those this connection has used."""
    used = [name for name, _ in connection._model_cache]
    return list(dict.fromkeys([*(models or []), *DEMO_MODELS, *used]))


class ModelInspector(_Form):
    """A model's versions, platform, properties, inputs and outputs."""

    def __init__(self, connection: Connection, model: str = "", models: list[str] | None = None) -> None:
        self.connection = connection
        self.model_field = w.Combobox(
            value=model, options=_model_names(connection, models), placeholder="model name", description="Model",
            ensure_option=False,
        )
        self.version_field = w.Text(placeholder="latest", description="Version")
        super().__init__([self.model_field, self.version_field], "Show")
        if model:
            self.run()

    def work(self) -> str:
        name, version = self.model_field.value.strip(), self.version_field.value.strip()
        if not name:
            raise EasnbError("Type a model name first.", hint="The V2 API has no model list; the box offers known names.")
        meta = self.connection.model_metadata(name, version)
        ready = self.connection.model_ready(name, version)
        return f"<div>{light('model ready', ready)}</div>" + display.model_html(meta)


def parse_values(text: str, datatype: str) -> Any:
    """JSON (a list, or one value) or CSV rows, as an array for ``datatype``."""
    text = text.strip()
    if not text:
        raise EasnbError("An input box is empty.", hint="Type JSON like [[1, 2, 3, 4]] or CSV rows.")
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


class InferInspector(_Form):
    """A form built from a model's inputs: JSON/CSV boxes or a DataFrame variable; Run; a table."""

    def __init__(self, connection: Connection, model: str = "", models: list[str] | None = None, namespace: dict[str, Any] | None = None) -> None:
        self.connection = connection
        self.namespace = namespace
        self.result: InferResult | None = None
        self.latency_ms: float | None = None
        self.meta: ModelMetadata | None = None
        self.boxes: dict[str, w.Textarea] = {}
        self.model_field = w.Combobox(
            value=model, options=_model_names(connection, models), placeholder="model name", description="Model",
            ensure_option=False,
        )
        load = w.Button(description="Load inputs")
        load.on_click(lambda _: self.load())
        self.frame_field = w.Text(placeholder="e.g. df", description="DataFrame")
        self.inputs_box = w.VBox()
        self.note = w.HTML()
        super().__init__([w.HBox([self.model_field, load]), self.inputs_box, self.frame_field, self.note], "Run")
        if model:
            self.load()

    def load(self) -> None:
        """Ask the model's metadata and build one box per input."""
        try:
            self.meta = self.connection.cached_model_metadata(self.model_field.value.strip())
        except EasnbError as exc:
            self.note.value = error_html(exc)
            return
        self.boxes = {
            t.name: w.Textarea(
                placeholder=f"{t.datatype} {display.shape_text(t.shape)}: JSON or CSV rows",
                description=t.name,
                layout=w.Layout(width="520px", height="60px"),
            )
            for t in self.meta.inputs
        }
        self.inputs_box.children = list(self.boxes.values())
        self.note.value = (
            "<small>Type values per input, or name a DataFrame from the notebook. "
            "A single row is sent as a batch of one.</small>"
        )

    def _namespace(self) -> dict[str, Any]:
        if self.namespace is not None:
            return self.namespace
        try:
            from IPython import get_ipython

            shell = get_ipython()
        except ImportError:
            shell = None
        return shell.user_ns if shell is not None else {}

    def inputs(self) -> Any:
        """What Run sends: the named DataFrame, or the boxes' values."""
        variable = self.frame_field.value.strip()
        if variable:
            frame = self._namespace().get(variable)
            if frame is None or not hasattr(frame, "columns"):
                raise EasnbError(f"No DataFrame called {variable!r} in the notebook.", hint="Run the cell that makes it first.")
            return frame
        if self.meta is None:
            self.load()
        if self.meta is None:
            raise EasnbError("Load the model's inputs first.")
        inputs = {}
        for tensor in self.meta.inputs:
            array = parse_values(self.boxes[tensor.name].value, tensor.datatype)
            if array.ndim == len(tensor.shape) - 1:
                array = array[np.newaxis]
            inputs[tensor.name] = Tensor(array, tensor.datatype)
        return inputs

    def work(self) -> str:
        model = self.model_field.value.strip()
        inputs = self.inputs()
        started = time.perf_counter()
        result = self.connection.infer(model, inputs)
        self.latency_ms = (time.perf_counter() - started) * 1000
        self.result = result
        return f"<div>latency {self.latency_ms:.1f} ms</div>" + display.result_html(result)

    @property
    def frame(self) -> Any:
        """The last result as a DataFrame."""
        return None if self.result is None else self.result.to_frame()


def inspect(connection: Connection, models: list[str] | None = None) -> w.Tab:
    """Server, model and infer inspectors as tabs of one view."""
    tabs = w.Tab([ServerInspector(connection), ModelInspector(connection, models=models), InferInspector(connection, models=models)])
    for i, title in enumerate(("Server", "Model", "Infer")):
        tabs.set_title(i, title)
    return tabs


__all__ = ["InferInspector", "ModelInspector", "ServerInspector", "inspect", "parse_values"]
