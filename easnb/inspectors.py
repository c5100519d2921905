"""Inspectors: the server, a model, an inference form and the call history, alone or as ``inspect(...)``.

Each takes a ``Connection`` or a ``ConnectionWidget``; given the widget, they use its
current connection at every call, so a reconnect never leaves them broken.

>>> bench = easnb.inspect(widget)             # doctest: +SKIP
>>> bench.result, bench.history               # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from io import StringIO
from typing import Any

from . import widgets as _widgets  # noqa: F401, I001 - first, for its message when ipywidgets is missing
import ipywidgets as w
import numpy as np

from . import display
from .display import error_html
from .errors import EasnbError
from .history import History, saved_inputs, summarize_inputs
from .results import InferResult, ModelMetadata
from .tensors import Tensor
from .widgets import Background, ConnectionWidget, connection_of, light, lights


class _Form(w.VBox):
    """A form whose button runs work in the background and shows the answer or the error."""

    def __init__(self, controls: list[w.Widget], label: str) -> None:
        self.button = w.Button(description=label, button_style="primary")
        self.button.on_click(lambda _: self.run())
        self.output = w.HTML()
        self._background = Background("easnb-inspector")
        super().__init__([*controls, self.button, self.output])

    @property
    def connection(self) -> Any:
        """The connection in use now (the widget's current one, when given a widget)."""
        return connection_of(self.source)

    def run(self, wait: bool = False) -> None:
        """Do what the button does; ``wait=True`` blocks until done (or until the run under way is)."""
        if self._background.busy:
            if wait:
                self._background.wait()
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

    def __init__(self, source: Any) -> None:
        self.source = source
        super().__init__([], "Refresh")
        self.run()

    def work(self) -> str:
        c = self.connection
        return f"<div>{lights(c.live(), c.ready())}</div>" + display.server_html(c.server_metadata())


def model_names(source: Any, models: list[str] | None = None) -> list[str]:
    """Names to offer: the given ones, then the server's repository index (or the names used so far)."""
    try:
        known = connection_of(source).known_models()
    except EasnbError:
        known = []
    return list(dict.fromkeys([*(models or []), *known]))


def _model_box(source: Any, model: str, models: list[str] | None) -> w.Combobox:
    return w.Combobox(
        value=model, options=model_names(source, models), placeholder="model name", description="Model",
        ensure_option=False, continuous_update=False,
    )


class ModelInspector(_Form):
    """A model's versions, platform, properties, inputs and outputs."""

    def __init__(self, source: Any, model: str = "", models: list[str] | None = None) -> None:
        self.source = source
        self.model_field = _model_box(source, model, models)
        self.version_field = w.Text(placeholder="latest", description="Version")
        self.model_field.observe(lambda change: change["new"] and self.run(), names="value")
        super().__init__([self.model_field, self.version_field], "Show")
        if model:
            self.run()

    def work(self) -> str:
        name, version = self.model_field.value.strip(), self.version_field.value.strip()
        if not name:
            raise EasnbError("Pick or type a model name first.", hint="The box lists the server's models when it has an index.")
        meta = self.connection.model_metadata(name, version)
        ready = self.connection.model_ready(name, version)
        return f"<div>{light('model ready', ready)}</div>" + display.model_html(meta)


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


class InferInspector(_Form):
    """A form built from a model's inputs: JSON/CSV boxes or a DataFrame variable, options, Run, a table.

    ``inspector.result`` is the last ``InferResult``; ``inspector.history`` every call made here.
    """

    def __init__(
        self,
        source: Any,
        model: str = "",
        models: list[str] | None = None,
        namespace: dict[str, Any] | None = None,
        history: History | None = None,
    ) -> None:
        self.source = source
        self.namespace = namespace
        self.history = history if history is not None else History()
        self.result: InferResult | None = None
        self.latency_ms: float | None = None
        self.meta: ModelMetadata | None = None
        self.boxes: dict[str, w.Textarea] = {}
        self.model_field = _model_box(source, model, models)
        self.model_field.observe(lambda change: change["new"] and self.load(), names="value")
        example = w.Button(description="Example", tooltip="fill every input with a valid sample")
        example.on_click(lambda _: self.fill_example())
        self.version_field = w.Text(placeholder="latest", description="Version")
        self.parameters_field = w.Text(placeholder='JSON, e.g. {"temperature": 0.5}', description="Parameters", layout=w.Layout(width="520px"))
        self.outputs_field = w.Text(
            placeholder='all; or ["label"], or {"label": {"top_k": 1}}', description="Outputs", layout=w.Layout(width="520px")
        )
        self.raw_field = w.Checkbox(value=True, description="raw contents (off: typed)", indent=True)
        self.frame_field = w.Text(placeholder="e.g. df", description="DataFrame")
        self.inputs_box = w.VBox()
        self.note = w.HTML()
        self.latency = w.HTML()
        options = w.Accordion([w.VBox([self.version_field, self.parameters_field, self.outputs_field, self.raw_field])], selected_index=None)
        options.set_title(0, "Options")
        super().__init__([w.HBox([self.model_field, example]), self.inputs_box, self.frame_field, options, self.note], "Run")
        self.children = [*self.children, self.latency]
        if model:
            self.load()

    def load(self) -> None:
        """Ask the model's metadata and build one box per input."""
        try:
            self.meta = self.connection.cached_model_metadata(self.model_field.value.strip(), self.version_field.value.strip())
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
            "<small>Type values per input (Example fills a valid sample), or name a DataFrame from the notebook. "
            "A single row is sent as a batch of one.</small>"
        )

    def fill_example(self) -> None:
        """Fill every input box with a valid sample built from the metadata."""
        if self.meta is None or self.meta.name != self.model_field.value.strip():
            self.load()
        if self.meta is not None:
            for name, text in example_text(self.meta).items():
                self.boxes[name].value = text

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
        if self.meta is None or self.meta.name != self.model_field.value.strip():
            self.load()
        if self.meta is None:
            raise EasnbError("Pick a model first.")
        inputs = {}
        for tensor in self.meta.inputs:
            array = parse_values(self.boxes[tensor.name].value, tensor.datatype)
            if array.ndim == len(tensor.shape) - 1:
                array = array[np.newaxis]
            inputs[tensor.name] = Tensor(array, tensor.datatype)
        return inputs

    def options(self) -> dict[str, Any]:
        """Version, parameters and requested outputs from the Options fold."""
        def parsed(field: w.Text, what: str) -> Any:
            text = field.value.strip()
            if not text:
                return None
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise EasnbError(f"{what} are not JSON: {exc}.") from None

        outputs = parsed(self.outputs_field, "Outputs")
        return {
            "version": self.version_field.value.strip(),
            "parameters": parsed(self.parameters_field, "Parameters"),
            "outputs": [outputs] if isinstance(outputs, str) else outputs,
        }

    def work(self) -> str:
        model = self.model_field.value.strip()
        inputs = self.inputs()
        options = self.options()
        conn = self.connection
        if hasattr(inputs, "columns"):
            from .frames import frame_to_inputs

            inputs = frame_to_inputs(inputs, conn.cached_model_metadata(model, options["version"]))
        request = {"model": model, "inputs": saved_inputs(inputs), **options}
        started = time.perf_counter()
        result = self.history.record(
            conn, "infer", model, summarize_inputs(inputs), request,
            lambda: conn.infer(model, inputs, raw=self.raw_field.value, **options),
        )
        self.latency_ms = (time.perf_counter() - started) * 1000
        self.result = result
        latencies = [c.latency_ms for c in self.history if c.status == "OK" and c.kind == "infer"]
        self.latency.value = display.latency_html(latencies)
        return f"<div>latency {self.latency_ms:.1f} ms</div>" + display.result_html(result)

    @property
    def frame(self) -> Any:
        """The last result as a DataFrame."""
        return None if self.result is None else self.result.to_frame()


class HistoryView(w.VBox):
    """The session's calls: a table with latency percentiles; replay one, or copy it as code."""

    def __init__(self, source: Any, history: History) -> None:
        self.source = source
        self.history = history
        self.table = w.HTML()
        self.entry = w.Dropdown(description="Call", options=[])
        self.flavour = w.Dropdown(description="as", options=["easnb", "tritonclient", "grpcurl"], layout=w.Layout(width="220px"))
        copy = w.Button(description="Copy as code", tooltip="show the call as code to paste; the token stays in $EASNB_TOKEN")
        copy.on_click(lambda _: self.show_code())
        replay = w.Button(description="Replay")
        replay.on_click(lambda _: self.replay())
        self.code = w.Textarea(layout=w.Layout(width="720px", height="160px"), placeholder="code appears here")
        self.output = w.HTML()
        super().__init__([self.table, w.HBox([self.entry, self.flavour, copy, replay]), self.code, self.output])
        history.on_change(lambda _: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        self.table.value = display.history_html(self.history)
        self.entry.options = [(f"{i}: {c.when:%H:%M:%S} {c.name} ({c.status})", i) for i, c in enumerate(self.history)][::-1]

    def show_code(self) -> str:
        """The chosen call as code (also shown in the text box, to copy)."""
        try:
            if self.entry.value is None:
                raise EasnbError("No call to copy yet: run one in another tab.")
            self.code.value = self.history.code(self.entry.value, self.flavour.value)
            self.output.value = ""
        except Exception as exc:
            self.output.value = error_html(exc)
        return self.code.value

    def replay(self) -> None:
        try:
            if self.entry.value is None:
                raise EasnbError("No call to replay yet.")
            answer = self.history.replay(self.entry.value, connection_of(self.source))
            body = display.result_html(answer) if isinstance(answer, InferResult) else f"<pre>{answer}</pre>"
            self.output.value = body
        except Exception as exc:
            self.output.value = error_html(exc)


class Workbench(w.VBox):
    """``inspect(...)``: Server, Model, Infer, Service and History tabs for what the endpoint speaks.

    Given a ``ConnectionWidget``, it says "press Connect" until the widget connects,
    and builds itself again on every reconnect; the history stays.
    """

    def __init__(self, source: Any, models: list[str] | None = None) -> None:
        self.source = source
        self.models = models
        self.history = History()
        self.tabs = w.Tab()
        self.status = w.HTML()
        self.infer: InferInspector | None = None
        self.service: Any = None
        self.builds = 0  # how many times the tabs were built for a connection
        super().__init__([self.status, self.tabs])
        if isinstance(source, ConnectionWidget):
            source.on_connect(lambda _: self.build())
            if source.connection is None:
                self.status.value = "<i>Not connected yet: press Connect in the connection widget above.</i>"
                return
        self.build()

    @property
    def result(self) -> InferResult | None:
        """The last inference result from the Infer tab."""
        return self.infer.result if self.infer is not None else None

    def build(self) -> None:
        """(Re)build the tabs for the source's current connection."""
        try:
            conn = connection_of(self.source)
            found = getattr(self.source, "discovery", None) or conn.discover()
        except Exception as exc:
            self.status.value = error_html(exc)
            return
        pages: list[tuple[str, w.Widget]] = []
        if found.v2:
            self.infer = InferInspector(self.source, models=self.models, history=self.history)
            pages += [
                ("Server", ServerInspector(self.source)),
                ("Model", ModelInspector(self.source, models=self.models)),
                ("Infer", self.infer),
            ]
        if found.other_services or not found.v2:
            self.service = ServicesPage(self.source, found, self.history)
            pages.append(("Service", self.service))
        pages.append(("History", HistoryView(self.source, self.history)))
        self.tabs.children = [page for _, page in pages]
        for i, (title, _) in enumerate(pages):
            self.tabs.set_title(i, title)
        self.builds += 1
        when = time.strftime("%H:%M:%S")
        self.status.value = f"<small>{found._repr_html_()} <span class='easnb-built'>built {when} (#{self.builds})</span></small>"


class ServicesPage(w.VBox):
    """Pick one of the server's services (from reflection), or load one from a ``.proto``; its form below."""

    def __init__(self, source: Any, found: Any, history: History) -> None:
        self.source = source
        self.history = history
        self.inspector: Any = None
        self.picker = w.Dropdown(description="Service", options=list(found.other_services))
        self.proto_field = w.Text(description=".proto", placeholder="path/to/service.proto (without reflection)")
        self.name_field = w.Text(description="Service", placeholder="package.Service")
        load = w.Button(description="Load")
        load.on_click(lambda _: self.show(self.name_field.value.strip(), self.proto_field.value.strip() or None))
        self.body = w.VBox()
        self.picker.observe(lambda change: change["new"] and self.show(change["new"]), names="value")
        manual = w.Accordion([w.VBox([self.proto_field, self.name_field, load])], selected_index=None if found.services else 0)
        manual.set_title(0, "From a .proto file")
        super().__init__([self.picker, manual, self.body] if found.services else [manual, self.body])
        if found.other_services:
            self.show(found.other_services[0])

    def show(self, service: str, proto: str | None = None) -> None:
        from .service_inspector import ServiceInspector

        try:
            self.inspector = ServiceInspector(self.source, service, proto=proto, history=self.history)
            self.body.children = [self.inspector]
        except Exception as exc:
            self.body.children = [w.HTML(error_html(exc))]


def inspect(source: Any, models: list[str] | None = None) -> Workbench:
    """Server, model, infer, service and history tabs for a ``Connection`` or a ``ConnectionWidget``."""
    return Workbench(source, models)


__all__ = [
    "HistoryView", "InferInspector", "ModelInspector", "ServerInspector", "ServicesPage", "Workbench",
    "example_text", "inspect", "parse_values",
]
