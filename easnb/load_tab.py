"""The workbench's Load tab: levels, duration, Start/Stop, the chart filling in level by level.

>>> tab = LoadTab(conn_or_widget, history=History())   # doctest: +SKIP
>>> tab.start(wait=True); tab.report.frame             # doctest: +SKIP
"""

from __future__ import annotations

import threading
from typing import Any

from . import widgets as _widgets  # noqa: F401, I001 - first, for its message when ipywidgets is missing
import ipywidgets as w

from .display import error_html
from .errors import EasnbError
from .history import History
from .model_forms import example_text, model_box, parse_values
from .loadreport import LoadReport, chart_svg, outcome, report_html
from .markup import Markup, html
from .perf_calls import saved_data, summary
from .tensors import Tensor
from .widgets import Background, connection_of

SOURCES = ("Example", "Infer form", "DataFrame", "Prompt (streaming model)")


class DataPicker(w.HBox):  # type: ignore[misc]  # ipywidgets ships no type hints
    """Where a tab's data comes from: the model's Example, the Infer tab's form, or a DataFrame variable."""

    def __init__(self, source: Any, infer_form: Any = None, prompt: bool = True) -> None:
        self.source = source
        self.infer_form = infer_form
        options = list(SOURCES) if prompt else list(SOURCES[:3])
        self.kind = w.Dropdown(description="Data", options=options, value="Example", layout=w.Layout(width="220px"))
        self.variable = w.Text(placeholder="DataFrame variable, e.g. df", layout=w.Layout(width="200px"))
        self.prompt = w.Text(placeholder="prompt, for a streaming text model", layout=w.Layout(width="300px"))
        super().__init__([self.kind, self.variable, *([self.prompt] if prompt else [])])

    def data(self, model: str) -> tuple[Any, str]:
        """The inputs to send (a dict of tensors, a DataFrame, or a prompt) and, for a DataFrame, its name."""
        if self.kind.value == SOURCES[3]:
            if not self.prompt.value.strip():
                raise EasnbError("Type a prompt for the streaming model.")
            return self.prompt.value, ""
        if self.kind.value == "DataFrame":
            name = self.variable.value.strip()
            frame = _user_namespace().get(name) if name else None
            if frame is None or not hasattr(frame, "columns"):
                raise EasnbError(f"No DataFrame called {name!r} in the notebook.", hint="Name one, or pick Example.")
            return frame, name
        if self.kind.value == "Infer form":
            if self.infer_form is None:
                raise EasnbError("There is no Infer tab here.", hint="Pick Example or a DataFrame.")
            return self.infer_form.inputs(), ""
        meta = connection_of(self.source).cached_model_metadata(model)
        texts = example_text(meta)
        inputs = {}
        for tensor in meta.inputs:
            array = parse_values(texts[tensor.name], tensor.datatype)
            inputs[tensor.name] = Tensor(array if array.ndim == len(tensor.shape) else array[None], tensor.datatype)
        return inputs, ""


def _user_namespace() -> dict[str, Any]:
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    return shell.user_ns if shell is not None else {}


def levels_of(text: str) -> list[float]:
    """``"1, 2, 4"`` as ``[1.0, 2.0, 4.0]``, or a clear error."""
    try:
        values = [float(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise EasnbError(f"Levels {text!r} are not numbers.", hint="e.g. 1,2,4,8") from None
    if not values:
        raise EasnbError("Give one or more levels.", hint="e.g. 1,2,4,8")
    return values


class LoadTab(w.VBox):  # type: ignore[misc]  # ipywidgets ships no type hints
    """Sweep levels of load on a model; each finished level adds a row and a point to the chart."""

    def __init__(self, source: Any, models: list[str] | None = None, history: History | None = None,
                 infer_form: Any = None) -> None:
        self.source = source
        self.history = history if history is not None else History()
        self.report: LoadReport | None = None
        self.model_field = model_box(source, "", models)
        self.mode = w.Dropdown(description="Load", options=[("concurrency (callers)", "concurrency"),
                                                              ("rate (requests/s, open loop)", "rate")], layout=w.Layout(width="330px"))
        self.levels = w.Text(value="1,2,4,8", description="Levels")
        self.seconds = w.BoundedFloatText(value=5, min=0.1, max=3600, description="Seconds")
        self.warmup = w.BoundedFloatText(value=1, min=0, max=600, description="Warm-up s")
        self.picker = DataPicker(source, infer_form)
        self.start_button = w.Button(description="Start", button_style="primary")
        self.stop_button = w.Button(description="Stop", disabled=True)
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.progress = w.HTML()
        self.chart = w.HTML()
        self.output = w.HTML()
        self._cancel = threading.Event()
        self._background = Background("easnb-load")
        super().__init__([
            self.model_field, w.HBox([self.mode, self.levels]), w.HBox([self.seconds, self.warmup]), self.picker,
            w.HBox([self.start_button, self.stop_button]), self.progress, self.chart, self.output,
        ])

    def start(self, wait: bool = False) -> None:
        """Start the sweep in the background (``wait=True`` blocks until it ends)."""
        if self._background.busy:
            return
        self._cancel = threading.Event()
        self.start_button.disabled, self.stop_button.disabled = True, False
        self.output.value, self.chart.value = "", ""
        self._background.start(self._run, wait)

    def stop(self) -> None:
        """Stop after the level under way; the levels finished are kept."""
        self._cancel.set()
        self.progress.value = Markup("<i>stopping\u2026</i>")

    def wait(self, timeout: float | None = None) -> None:
        self._background.wait(timeout)

    def _run(self) -> None:
        finished: list[Any] = []
        try:
            conn = connection_of(self.source)
            model = self.model_field.value.strip()
            if not model:
                raise EasnbError("Pick a model first.")
            data, frame_name = self.picker.data(model)
            mode, values = self.mode.value, levels_of(self.levels.value)
            if mode == "concurrency" and all(v == int(v) for v in values):
                values = [int(v) for v in values]
            stream = isinstance(data, str)  # a prompt: generations, with time to first token
            request = {"model": model, "mode": mode, "levels": values, "seconds": self.seconds.value,
                       "warmup": self.warmup.value, **saved_data(data, frame_name)}

            def on_level(level: Any) -> None:
                finished.append(level)
                self.chart.value = chart_svg(finished)
                failed = sum(level.errors.values())
                if level.requests and failed >= level.requests:  # no latency to show: say so, not "p50 nan ms"
                    self.progress.value = html("<small>{} of {} levels done; last: {} {:g}, every one of its {} requests "
                                               "failed ({})</small>", len(finished), len(values), mode, level.level,
                                               level.requests, ", ".join(f"{k} {v}" for k, v in sorted(level.errors.items())))
                    return
                self.progress.value = html("<small>{} of {} levels done; last: {} {:g}, {:.0f} infer/s, p50 {:.2f} ms</small>",
                                           len(finished), len(values), mode, level.level, level.infer_per_s, level.p50_ms)

            self.progress.value = html("<small>running {} {}\u2026</small>", mode, self.levels.value)
            self.report = self.history.record(
                conn, "load", model, summary(request), request,
                lambda: conn.load_test(model, data, seconds=self.seconds.value, warmup=self.warmup.value, progress=False,
                                       on_level=on_level, cancel=self._cancel, stream=stream, **{mode: values}),
                outcome,  # a sweep whose requests failed is not "OK" in History
            )
            self.chart.value = chart_svg(self.report.levels)
            self.output.value = report_html(self.report, chart=False)  # the chart is above
            self.progress.value = html("<small>{}</small>", "stopped" if self.report.interrupted else "done")
        except Exception as exc:
            self.output.value = error_html(exc)
            self.progress.value = ""
        finally:
            self.start_button.disabled, self.stop_button.disabled = False, True
