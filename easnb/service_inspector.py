"""A form for any gRPC service: pick a method, fill fields made from its request, Call, see the reply.

Scalar fields get a control of their kind (text, number, checkbox, enum dropdown);
64-bit integers are text, so they stay exact; repeated, nested and map fields are JSON
boxes checked against the descriptor. Streamed replies appear as they arrive and can
be cancelled; client-streaming methods take a JSON list of requests.

>>> easnb.ServiceInspector(conn, "helloworld.GreeterService")   # doctest: +SKIP
"""

from __future__ import annotations

import json
from typing import Any

from . import widgets as _widgets  # noqa: F401, I001 - first, for its message when ipywidgets is missing
import ipywidgets as w
from google.protobuf.descriptor import FieldDescriptor as F

from . import display
from .display import error_html
from .history import History
from .markup import Markup, html
from .reflection import is_repeated
from .services import Method, RequestError, ServiceClient, iter_replies, resolve
from .widgets import Background, connection_of

_INT32 = {F.TYPE_INT32, F.TYPE_UINT32, F.TYPE_SINT32, F.TYPE_FIXED32, F.TYPE_SFIXED32}
_INT64 = {F.TYPE_INT64, F.TYPE_UINT64, F.TYPE_SINT64, F.TYPE_FIXED64, F.TYPE_SFIXED64}
_FLOAT = {F.TYPE_FLOAT, F.TYPE_DOUBLE}
_WIDE = w.Layout(width="520px")


def control_for(field: Any) -> w.Widget:
    """The control for one request field; its ``description`` is the field's name."""
    name = field.name
    if field.message_type is not None or is_repeated(field):
        kind = "map" if field.message_type is not None and field.message_type.GetOptions().map_entry else (
            "list" if is_repeated(field) else field.message_type.full_name
        )
        return w.Textarea(description=name, placeholder=f"JSON ({kind})", layout=w.Layout(width="520px", height="52px"))
    if field.enum_type is not None:
        return w.Dropdown(description=name, options=[v.name for v in field.enum_type.values])
    if field.type == F.TYPE_BOOL:
        return w.Checkbox(description=name, indent=True)
    if field.type in _INT32:
        return w.IntText(description=name)
    if field.type in _FLOAT:
        return w.FloatText(description=name)
    placeholder = {F.TYPE_BYTES: "base64"}.get(field.type, "integer (kept exact)" if field.type in _INT64 else "")
    return w.Text(description=name, placeholder=placeholder, layout=_WIDE)


def value_of(field: Any, control: w.Widget) -> tuple[bool, Any]:
    """``(is_set, JSON value)`` of a control; a default value counts as not set."""
    value = control.value
    if isinstance(control, w.Textarea):
        text = value.strip()
        if not text:
            return False, None
        try:
            return True, json.loads(text)
        except json.JSONDecodeError as exc:
            raise RequestError(f"Field {field.name!r} is not JSON: {exc}.", hint="e.g. [1, 2] or {\"key\": \"value\"}") from None
    if isinstance(control, w.Dropdown):
        return value != field.enum_type.values[0].name, value
    if isinstance(control, w.Text):
        return bool(value), value
    return bool(value), value


class ServiceInspector(w.VBox):  # type: ignore[misc]  # ipywidgets ships no type hints
    """Call any method of one service from a form; ``inspector.replies`` holds the last answer as JSON.

    ``source`` is a ``Connection`` or a ``ConnectionWidget`` (its current connection is
    used at each call). The service comes from the server's reflection, or from ``proto``.
    """

    def __init__(self, source: Any, service: str, proto: str | None = None, history: History | None = None) -> None:
        self.source = source
        self.service = service
        self.proto = proto
        self.history = history if history is not None else History()
        self.replies: list[dict[str, Any]] = []
        self.latency_ms: float | None = None
        self.client = ServiceClient(connection_of(source), resolve(connection_of(source), proto or service, service if proto else None, ()))
        self.method_field = w.Dropdown(description="Method", options=list(self.client.methods))
        self.method_field.observe(lambda _: self.build_form(), names="value")
        self.form = w.VBox()
        self.requests_box = w.Textarea(
            description="Requests", placeholder='JSON list, one object per request: [{"name": "a"}, {"name": "b"}]',
            layout=w.Layout(width="520px", height="80px"),
        )
        self.view = w.ToggleButtons(options=["table", "JSON"], value="table", style={"button_width": "70px"})
        self.view.observe(lambda _: self._show(), names="value")
        self.call_button = w.Button(description="Call", button_style="primary")
        self.call_button.on_click(lambda _: self.call())
        self.cancel_button = w.Button(description="Cancel", disabled=True)
        self.cancel_button.on_click(lambda _: self.cancel())
        self.status = w.HTML()
        self.output = w.HTML()
        self.controls: dict[str, w.Widget] = {}
        self._background = Background("easnb-service-call")
        self._stream: Any = None
        super().__init__([
            w.HTML(html("<b>{}</b>", service)), self.method_field, self.form,
            w.HBox([self.call_button, self.cancel_button, self.view]), self.status, self.output,
        ])
        self.build_form()

    @property
    def method(self) -> Method:
        return self.client.methods[self.method_field.value]

    def build_form(self) -> None:
        """One control per field of the picked method's request (or a JSON list for client streams)."""
        method = self.method
        kind = ("stream of " if method.client_streaming else "") + method.request_class.DESCRIPTOR.name
        answer = ("stream of " if method.server_streaming else "") + method.response_class.DESCRIPTOR.name
        note = w.HTML(html("<small>{} \u2192 {}</small>", kind, answer))
        if method.client_streaming:
            self.controls = {}
            self.form.children = [note, self.requests_box]
            return
        self.controls = {f.name: control_for(f) for f in method.request_class.DESCRIPTOR.fields}
        self.form.children = [note, *self.controls.values()]

    def request(self) -> dict[str, Any]:
        """The request the form describes, as proto3 JSON (checked against the descriptor)."""
        fields = {f.name: f for f in self.method.request_class.DESCRIPTOR.fields}
        data: dict[str, Any] = {}
        oneofs: dict[str, str] = {}
        for name, control in self.controls.items():
            is_set, value = value_of(fields[name], control)
            if not is_set:
                continue
            group = fields[name].containing_oneof
            if group is not None and not group.name.startswith("_"):
                if group.name in oneofs:
                    raise RequestError(f"Fields {oneofs[group.name]!r} and {name!r} are one of {group.name!r}: set only one.")
                oneofs[group.name] = name
            data[name] = value
        self.method.message(data)  # raises RequestError naming the field that does not fit
        return data

    def requests(self) -> list[dict[str, Any]]:
        if not self.method.client_streaming:
            return [self.request()]
        text = self.requests_box.value.strip() or "[]"
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RequestError(f"Requests are not JSON: {exc}.", hint='Give a list, e.g. [{"name": "a"}].') from None
        items = items if isinstance(items, list) else [items]
        for item in items:
            self.method.message(item)
        return items

    def call(self, wait: bool = False) -> None:
        """Call the method in the background (as the button does); ``wait=True`` blocks until done."""
        if self._background.busy:
            if wait:
                self._background.wait()
            return
        self.call_button.disabled = True
        self.replies = []
        self.output.value = ""
        self._background.start(self._call, wait)

    def cancel(self) -> None:
        """Stop a streaming call; the replies so far stay."""
        if self._stream is not None:
            self._stream.cancel()

    def _call(self) -> None:
        method = self.method
        try:
            requests = self.requests()
            conn = connection_of(self.source)
            client = ServiceClient(conn, self.client.descriptor)  # the source's current connection
            target = client.methods[method.descriptor.name]
            record = {
                "service": self.service, "method": method.descriptor.name, "proto": self.proto, "requests": requests,
                "client_streaming": method.client_streaming, "server_streaming": method.server_streaming,
            }
            summary = json.dumps(requests[0] if len(requests) == 1 else requests)[:80]
            _, call = self.history.timed(conn, "service", method.path, summary, record, lambda: self._run(target, requests))
            self.latency_ms = call.latency_ms  # one figure per call: the one History shows
            self._show(done=True)
        except Exception as exc:
            self.status.value = error_html(exc)
        finally:
            self._stream = None
            self.call_button.disabled = False
            self.cancel_button.disabled = True

    def _run(self, method: Method, requests: list[dict[str, Any]]) -> None:
        answer = method(requests) if method.client_streaming else method(requests[0])
        if method.server_streaming:
            self._stream = answer
            self.cancel_button.disabled = False
        for reply in iter_replies(answer):
            self.replies.append(method.to_json(reply))  # Any unpacked with the service's own descriptors
            if method.server_streaming:
                self._show()  # replies as they arrive; the latency (to the last one) when the call ends

    def _show(self, done: bool = False) -> None:
        state = "" if done or self._stream is None else " (streaming\u2026)"
        latency = f"latency {self.latency_ms:.1f} ms" if self.latency_ms is not None else ""
        count = f"{len(self.replies)} repl{'y' if len(self.replies) == 1 else 'ies'}"
        self.status.value = html("<div>{} \u00b7 {}{}</div>", count, latency, state)
        if self.view.value == "JSON":
            text = "\n".join(json.dumps(r, indent=2, ensure_ascii=False) for r in self.replies)
            self.output.value = html("<pre class='easnb-json'>{}</pre>", text)
        else:
            self.output.value = replies_html(self.replies)


def replies_html(replies: list[dict[str, Any]]) -> Markup:
    """Replies as a table: one row per reply, nested fields as dotted columns (escaped)."""
    if not replies:
        return Markup()
    import pandas as pd

    frame = pd.json_normalize(replies)
    return display.frame_html(frame, max_rows=200)


__all__ = ["ServiceInspector", "control_for", "replies_html", "value_of"]
