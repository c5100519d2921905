"""The workbench's Compare tab: the same data through A (this connection's model) and B (another
model or version here, or a model on a second endpoint with its own token), the verdict first.

B's endpoint and token are a ``ConnectionWidget`` of its own, so B's token never becomes widget
state either.

>>> tab = CompareTab(conn_or_widget, history=History())   # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

from . import widgets as _widgets  # noqa: F401, I001 - first, for its message when ipywidgets is missing
import ipywidgets as w

from .compare import Comparison, compare
from .display import error_html
from .errors import EasnbError
from .history import History
from .model_forms import model_box
from .load_tab import DataPicker
from .markup import Markup
from .perf_calls import saved_data, summary
from .widgets import Background, ConnectionWidget, connection_of


class CompareTab(w.VBox):  # type: ignore[misc]  # ipywidgets ships no type hints
    """Model A on this connection against model B (here, or on the endpoint connected below)."""

    def __init__(self, source: Any, models: list[str] | None = None, history: History | None = None,
                 infer_form: Any = None) -> None:
        self.source = source
        self.history = history if history is not None else History()
        self.report: Comparison | None = None
        self.model_a = model_box(source, "", models)
        self.model_a.description = "Model A"
        self.model_b = w.Text(description="Model B", placeholder="default: model A")
        self.version_b = w.Text(description="Version B", placeholder="latest")
        self.other: ConnectionWidget | None = None  # made when asked for: one connection form at a time on the page
        self.other_button = w.Button(description="B on another endpoint\u2026", tooltip="connect B with its own endpoint and token",
                                     layout=w.Layout(width="fit-content"))  # the default width cut its label off
        self.other_button.on_click(lambda _: self.other_widget())
        self.where = w.VBox([self.other_button])
        self.rtol = w.FloatText(value=1e-5, description="rtol")
        self.atol = w.FloatText(value=1e-6, description="atol")
        self.picker = DataPicker(source, infer_form, prompt=False)
        self.button = w.Button(description="Compare", button_style="primary")
        self.button.on_click(lambda _: self.run())
        self.output = w.HTML()
        self._background = Background("easnb-compare")
        super().__init__([
            self.model_a, w.HBox([self.model_b, self.version_b]), self.where, w.HBox([self.rtol, self.atol]), self.picker,
            self.button, self.output,
        ])

    def other_widget(self) -> ConnectionWidget:
        """The connection form for B (endpoint and token), shown below; B's token only, never A's."""
        if self.other is None:
            self.other = ConnectionWidget(endpoint=os.environ.get("EASNB_ENDPOINT_B", ""))
            self.other.set_token(os.environ.get("EASNB_TOKEN_B") or None, source="from EASNB_TOKEN_B")
            if not os.environ.get("EASNB_ENDPOINT_B"):
                self.other.endpoint_field.value = ""
            self.where.children = [w.HTML("<b>B</b> (leave unconnected to compare on this connection)"), self.other]
        return self.other

    def run(self, wait: bool = False) -> None:
        """Compare in the background (``wait=True`` blocks until done)."""
        if self._background.busy:
            return
        self.button.disabled = True
        self.output.value = Markup("<i>comparing\u2026</i>")
        self._background.start(self._run, wait)

    def wait(self, timeout: float | None = None) -> None:
        self._background.wait(timeout)

    def _run(self) -> None:
        try:
            conn = connection_of(self.source)
            b = self.other.connection if self.other is not None else None
            other = b if b is not None and not b.closed else None
            model = self.model_a.value.strip()
            if not model:
                raise EasnbError("Pick model A first.")
            model_b = self.model_b.value.strip() or model
            data, frame_name = self.picker.data(model)
            request = {"model": model, "model_b": model_b, "version_b": self.version_b.value.strip(),
                       "endpoint_b": other.endpoint.target if other is not None else "",
                       "rtol": self.rtol.value, "atol": self.atol.value, **saved_data(data, frame_name)}
            self.report = self.history.record(
                conn, "compare", model, summary(request), request,
                lambda: compare(conn, other, model, data, model_b=model_b, version_b=request["version_b"],
                                rtol=self.rtol.value, atol=self.atol.value, latency_samples=20),
            )
            self.output.value = self.report._repr_html_()
        except Exception as exc:
            self.output.value = error_html(exc)
        finally:
            self.button.disabled = False
