"""The workbench ``easnb.inspect`` shows: a tab for each thing the endpoint speaks, and the call history.

Given a ``ConnectionWidget`` it says "press Connect" until the widget connects, and builds
itself again on every reconnect; the history stays.

>>> bench = easnb.inspect(widget)             # doctest: +SKIP
>>> bench.result, bench.history               # doctest: +SKIP
"""

from __future__ import annotations

import time
from typing import Any

from . import widgets as _widgets  # noqa: F401, I001 - first, for its message when ipywidgets is missing
import ipywidgets as w

from . import display
from .display import error_html
from .errors import EasnbError
from .history import History
from .markup import html, text
from .inspectors import InferInspector, ModelInspector, ServerInspector
from .results import InferResult
from .widget_status import STYLE, Follow
from .widgets import ConnectionWidget, connection_of


class HistoryView(w.VBox):  # type: ignore[misc]  # ipywidgets ships no type hints
    """The session's calls: a table with latency percentiles; replay one, or copy it as code.

    The newest call is selected as calls arrive, unless you picked an older one (picking the
    newest follows new calls again); the code box always shows the selected call in the
    selected flavour.
    """

    def __init__(self, source: Any, history: History) -> None:
        self.source = source
        self.history = history
        self.chosen: int | None = None  # the call picked by hand; None follows the newest
        self._updating = False
        self.table = w.HTML()
        self.entry = w.Dropdown(description="Call", options=[], layout=w.Layout(width="360px"))
        self.flavour = w.Dropdown(description="as", options=["easnb", "tritonclient", "grpcurl"], layout=w.Layout(width="170px"),
                                   style={"description_width": "24px"})
        copy = w.Button(description="Copy as code", tooltip="show the call as code to paste; the token stays in $EASNB_TOKEN",
                        layout=w.Layout(width="auto", min_width="150px", flex="0 0 auto"))
        copy.on_click(lambda _: self.show_code())
        replay = w.Button(description="Replay", layout=w.Layout(width="auto", min_width="90px", flex="0 0 auto"))
        replay.on_click(lambda _: self.replay())
        self.code = w.Textarea(layout=w.Layout(width="720px", height="160px"), placeholder="code appears here")
        self.output = w.HTML()
        self.entry.observe(self._picked, names="value")
        self.flavour.observe(lambda _: self.show_code(quiet=True), names="value")
        super().__init__([self.table, w.HBox([self.entry, self.flavour, copy, replay]), self.code, self.output])
        history.on_change(lambda _: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        self.table.value = display.history_html(self.history)
        newest = len(self.history) - 1
        self._updating = True
        try:
            self.entry.options = [(f"{i}: {c.when:%H:%M:%S} {c.kind} {c.name} ({c.status})", i) for i, c in enumerate(self.history)][::-1]
            self.entry.value = self.chosen if self.chosen is not None else (newest if newest >= 0 else None)
        finally:
            self._updating = False
        self.show_code(quiet=True)

    def _picked(self, change: dict[str, Any]) -> None:
        if self._updating:
            return
        self.chosen = None if change["new"] == len(self.history) - 1 else change["new"]
        self.show_code(quiet=True)

    def show_code(self, quiet: bool = False) -> str:
        """The selected call as code in the selected flavour (also in the text box, to copy).

        ``quiet``: with no call yet, leave the box empty instead of saying so.
        """
        try:
            if self.entry.value is None:
                self.code.value = ""
                if quiet:
                    return ""
                raise EasnbError("No call to copy yet: run one in another tab.")
            self.code.value = self.history.code(self.entry.value, self.flavour.value)
            self.output.value = ""
        except Exception as exc:
            self.code.value = ""  # never an older call's code beside this selection
            self.output.value = error_html(exc)
        code: str = self.code.value
        return code

    def replay(self) -> None:
        try:
            if self.entry.value is None:
                raise EasnbError("No call to replay yet.")
            answer = self.history.replay(self.entry.value, connection_of(self.source))
            self.output.value = display.result_html(answer) if isinstance(answer, InferResult) else text(answer)
        except Exception as exc:
            self.output.value = error_html(exc)


class Workbench(w.VBox):  # type: ignore[misc]  # ipywidgets ships no type hints
    """``inspect(...)``: Server, Model, Infer, Service and History tabs for what the endpoint speaks.

    Given a ``ConnectionWidget``, it says "press Connect" until the widget connects,
    and builds itself again on every reconnect; the history stays.
    """

    def __init__(self, source: Any, models: list[str] | None = None, generate: bool | None = None) -> None:
        self.source = source
        self.models = models
        self.show_generate = generate  # the Generate tab: None shows it when a model generates text
        self.generate: Any = None
        self.history = History()
        self.tabs = w.Tab()
        self.status = w.HTML()
        self.infer: InferInspector | None = None
        self.service: Any = None
        self.history_view: HistoryView | None = None
        self.builds = 0  # how many times the tabs were built for a connection
        super().__init__([w.HTML(STYLE, layout=w.Layout(height="0px", margin="0")), self.status, self.tabs])
        self.add_class("easnb-ui")
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
                ("Model", ModelInspector(self.source, models=self.models, history=self.history)),
                ("Infer", self.infer),
            ]
            from .generate_tab import add_generate_page  # shown for text generators, or when asked

            pages += add_generate_page(self, conn)
        if found.v2:  # load sweeps and A/B comparison, each in its own module
            from .compare_tab import CompareTab
            from .load_tab import LoadTab

            self.load, self.compare = (T(self.source, self.models, self.history, self.infer) for T in (LoadTab, CompareTab))
            pages += [("Load", self.load), ("Compare", self.compare)]
        if found.other_services or not found.v2:
            self.service = ServicesPage(self.source, found, self.history)
            pages.append(("Service", self.service))
        if self.history_view is None:  # one view for the session's one history, across reconnects
            self.history_view = HistoryView(self.source, self.history)
        pages.append(("History", self.history_view))
        self.tabs.children = [page for _, page in pages]
        for i, (title, _) in enumerate(pages):
            self.tabs.set_title(i, title)
        self.builds += 1
        when = time.strftime("%H:%M:%S")
        header = html(
            "<small>{} <span class='easnb-built'>built {} (#{})</span></small>", found._repr_html_(), when, self.builds
        )
        self.status.value = header
        if isinstance(self.source, ConnectionWidget):  # the header follows the connection, as the widget's lights do
            build = self.builds  # (it said "live · ready" after the server had gone)

            def show(line: Any) -> None:
                if self.builds == build:  # a later Connect's header is not overwritten by an old connection's news
                    self.status.value = line if line is header else html("<small>{}</small>", line) + header
            Follow(conn, header, show)


class ServicesPage(w.VBox):  # type: ignore[misc]  # ipywidgets ships no type hints
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
        self.picker.observe(lambda change: self.show(change["new"]) if change["new"] else None, names="value")
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


def inspect(source: Any, models: list[str] | None = None, generate: bool | None = None) -> Workbench:
    """Server, model, infer, service and history tabs for a ``Connection`` or a ``ConnectionWidget``.

    A Generate tab joins them when a model generates text (``generate=True`` always, ``False`` never).
    """
    return Workbench(source, models, generate)
