"""The V2 inspectors: the server, a model, and an inference form; ``easnb.inspect`` puts them in a workbench
(``easnb.workbench``).

Each takes a ``Connection`` or a ``ConnectionWidget``; given the widget, they use its
current connection at every call, so a reconnect never leaves them broken.

>>> InferInspector(widget, "iris").result      # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from . import widgets as _widgets  # noqa: F401, I001 - first, for its message when ipywidgets is missing
import ipywidgets as w
import numpy as np

from . import display
from .display import error_html
from .errors import EasnbError
from .history import LATENCY_MEANS, History, saved_inputs, summarize_inputs
from .markup import Markup, html
from .model_forms import example_text, model_box, model_names, parse_values
from .results import InferResult, ModelMetadata
from .tensors import Tensor
from .widget_status import light, lights
from .widgets import Background, connection_of


class _Form(w.VBox):  # type: ignore[misc]  # ipywidgets ships no type hints
    """A form whose button runs work in the background and shows the answer or the error."""

    children: Sequence[Any]  # the VBox's widgets (a tuple once set); ipywidgets ships no type hints

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
        return html("<div>{}</div>{}", lights(c.live(), c.ready()), display.server_html(c.server_metadata()))


class ModelInspector(_Form):
    """A model's versions, platform, properties, inputs and outputs."""

    def __init__(self, source: Any, model: str = "", models: list[str] | None = None, history: History | None = None) -> None:
        self.source = source
        self.history = history if history is not None else History()
        self.model_field = model_box(source, model, models)
        self.version_field = w.Text(placeholder="latest", description="Version")
        self.model_field.observe(lambda change: self.run() if change["new"] else None, names="value")
        super().__init__([self.model_field, self.version_field], "Show")
        if model:
            self.run()

    def work(self) -> str:
        name, version = self.model_field.value.strip(), self.version_field.value.strip()
        if not name:
            raise EasnbError("Pick or type a model name first.", hint="The box lists the server's models when it has an index.")
        conn = self.connection
        request = {"model": name, "version": version}
        meta = self.history.record(conn, "metadata", name, version and f"version {version}", request,
                                   lambda: conn.model_metadata(name, version))
        ready = conn.model_ready(name, version)
        return html("<div>{}</div>{}", light("model ready", ready), display.model_html(meta))


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
        self.model_field = model_box(source, model, models)
        self.model_field.observe(lambda change: self.load() if change["new"] else None, names="value")
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
        from .generate_tab import decoupled_offer  # a text generator is offered the Generate tab instead

        offer = decoupled_offer(self.meta, getattr(self, "on_generate", None))
        self.inputs_box.children = [*([offer] if offer is not None else []), *self.boxes.values()]
        self.note.value = Markup(
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

            inputs = frame_to_inputs(inputs, conn.cached_model_metadata(model, options["version"]), token=conn.settings.token)
        request = {"model": model, "inputs": saved_inputs(inputs), **options}
        result, call = self.history.timed(
            conn, "infer", model, summarize_inputs(request["inputs"]), request,
            lambda: conn.infer(model, inputs, raw=self.raw_field.value, **options),
        )
        self.latency_ms = call.latency_ms  # the same figure History shows for this call
        self.result = result
        latencies = [c.latency_ms for c in self.history if c.status == "OK" and c.kind == "infer"]
        self.latency.value = display.latency_html(latencies)
        return html(
            "<div><span class='easnb-call-latency'>latency {:.1f} ms</span> <small>({}; History shows the same)</small></div>{}",
            self.latency_ms, LATENCY_MEANS, display.result_html(result),
        )

    @property
    def frame(self) -> Any:
        """The last result as a DataFrame."""
        return None if self.result is None else self.result.to_frame()


__all__ = ["InferInspector", "ModelInspector", "ServerInspector", "example_text", "model_names", "parse_values"]
