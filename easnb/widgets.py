"""The connection widget: endpoint, token, timeout, Connect, and what the server said.

The token field is a small anywidget whose value is never a synced trait: the
browser sends the token to Python once, in a message, when Connect is pressed, and
clears the field. So the token is never in widget state, whether the notebook is
saved before or after Connect.

>>> widget = ConnectionWidget()          # doctest: +SKIP
>>> widget.on_connect(lambda conn: ...)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from typing import Any

from .channel import Keepalive
from .connection import Connection
from .credentials import Token, clean_token
from .display import error_html
from .errors import ClosedError, EasnbError, EndpointError
from .markup import Markup
from .widget_status import STYLE, NOT_CONNECTED, Follow, error_line, light, line, lights, status_html  # noqa: F401 - light(s) for the inspectors
from .settings import Settings, check_options, make_settings

try:
    import anywidget
    import ipywidgets as w
    import traitlets
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"easnb's widgets need ipywidgets and anywidget ({exc.name} is missing): pip install 'easnb[widgets]'"
    ) from None

LABEL = {"description_width": "100px"}  # every field's label, the token's too (_TOKEN_CSS): they line up, none cut off
CONSOLE_PLACEHOLDER = "http://<service>.<uid>.<region>.pai-eas.aliyuncs.com/"

_TOKEN_ESM = """
function render({ model, el }) {
  const row = document.createElement("div");
  row.className = "jupyter-widgets widget-inline-hbox widget-text easnb-token-row";
  const label = document.createElement("label");
  label.textContent = "Token";
  label.className = "widget-label";
  const input = document.createElement("input");
  input.type = "password";
  input.autocomplete = "off";
  input.className = "easnb-token-input";
  const button = document.createElement("button");
  button.className = "easnb-connect jupyter-button";
  const sync = () => {
    input.placeholder = model.get("placeholder");
    button.disabled = model.get("busy");
    button.textContent = model.get("busy") ? "Connecting\u2026" : "Connect";
  };
  const submit = () => {
    if (model.get("busy")) return;
    model.send({ type: "connect", token: input.value });
    input.value = "";  // the token lives on in Python only
  };
  button.addEventListener("click", submit);
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") submit(); });
  model.on("change:placeholder", sync);
  model.on("change:busy", sync);
  sync();
  row.append(label, input, button);
  el.appendChild(row);
}
export default { render };
"""

_TOKEN_CSS = """
.easnb-token-row.widget-inline-hbox { width: 520px; align-items: center; }
.easnb-token-row.widget-inline-hbox .widget-label { width: 100px; }
.easnb-token-row .easnb-token-input { flex: 1 1 auto; min-width: 0; }
.easnb-token-row .easnb-connect { margin-left: 4px; width: auto; }
"""


class Background:
    """One piece of work at a time in a daemon thread, so the notebook never freezes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, target: Callable[[], None], wait: bool = False) -> None:
        """Run ``target`` unless work is under way; ``wait=True`` blocks until it is done."""
        if self.busy:
            return
        self._thread = threading.Thread(target=target, name=self.name, daemon=True)
        self._thread.start()
        if wait:
            self._thread.join()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


class TokenField(anywidget.AnyWidget):
    """A password box and a Connect button; the typed token reaches Python only on Connect."""

    _esm = _TOKEN_ESM
    _css = _TOKEN_CSS
    placeholder = traitlets.Unicode("paste the service token").tag(sync=True)
    busy = traitlets.Bool(False).tag(sync=True)


def connection_of(source: Any) -> Connection:
    """The connection to use now: a ``Connection`` itself, or a ``ConnectionWidget``'s current one."""
    if isinstance(source, ConnectionWidget):
        if source.connection is None:
            raise EasnbError(
                "Not connected yet: press Connect in the connection widget.",
                hint="This view fills itself in when the widget connects.",
            )
        if source.connection.closed:
            raise ClosedError(
                "The connection widget's connection is closed (widget.connection.close() was called).",
                hint="Press Connect in the connection widget to open a new one (start the server first if it was stopped); "
                "this view follows it.",
            )
        return source.connection
    if source is None:
        raise EasnbError(
            "There is no connection yet (widget.connection is None until Connect is pressed).",
            hint="Pass the widget itself, easnb.inspect(widget): it fills in when you press Connect.",
        )
    if not isinstance(source, Connection):
        raise EasnbError(f"Expected a Connection or a ConnectionWidget, not {type(source).__name__}.")
    return source


class ConnectionWidget(w.VBox):  # type: ignore[misc]  # ipywidgets ships no type hints
    """Connect to a service from a form; ``widget.connection`` is the live ``Connection``.

    Fields prefill from ``EASNB_ENDPOINT`` / ``EASNB_TOKEN``. Connect runs in the
    background; a failure shows its hint and leaves the form as it was.
    """

    def __init__(self, endpoint: str | None = None, token: str | None = None, timeout: float = 5.0, **options: Any) -> None:
        """``options`` are ``connect()``'s other settings (``root_certificates``, ``interceptors``, ...),
        used for every Connect and Diagnose; the form's keepalive and headers go on top of them."""
        check_options(options, "ConnectionWidget()")
        self._options = options
        self._token: Token | None = None
        self._token_source = ""
        self._callbacks: list[Callable[[Connection], Any]] = []
        self._background = Background("easnb-connect")
        self.connection: Connection | None = None
        self.discovery: Any = None  # what the endpoint speaks, after Connect (easnb.discovery.Discovery)
        self.endpoint_field = w.Text(
            value=endpoint or os.environ.get("EASNB_ENDPOINT", ""),
            placeholder=CONSOLE_PLACEHOLDER,
            description="Endpoint",
            layout=w.Layout(width="520px"),
            style=LABEL,
        )
        self.timeout_field = w.BoundedFloatText(value=timeout, min=0.1, max=3600, description="Timeout (s)", style=LABEL)
        self.keepalive_field = w.BoundedFloatText(
            value=options.get("keepalive", Keepalive()).time_s, min=1, max=7200, description="Keepalive (s)", style=LABEL,
            tooltip="ping after this many idle seconds; servers may refuse pings more often than every 300 s",
        )
        self.headers_field = w.Textarea(
            placeholder="x-request-id: 42\none header per line (not authorization)",
            description="Headers",
            layout=w.Layout(width="520px", height="52px"),
            style=LABEL,
        )
        self.advanced = w.Accordion([w.VBox([self.keepalive_field, self.headers_field])], selected_index=None)
        self.advanced.set_title(0, "Advanced")
        self.token_field = TokenField()
        self.token_field.on_msg(self._on_token_message)
        self.status = w.HTML(line(None, None, NOT_CONNECTED))
        self.error = w.HTML()
        self.diagnose_button = w.Button(description="Diagnose", tooltip="check DNS, TCP, TLS, HTTP/2, the token, V2, step by step")
        self.diagnose_button.on_click(lambda _: self.diagnose())
        self.diagnosis = w.HTML()
        if token is not None:
            self.set_token(token, source="given")
        elif os.environ.get("EASNB_TOKEN"):
            self.set_token(os.environ["EASNB_TOKEN"], source="from EASNB_TOKEN")
        super().__init__(
            [
                w.HTML(STYLE + Markup("<b>easnb connection</b>")),
                self.endpoint_field,
                self.timeout_field,
                self.token_field,
                self.advanced,
                self.status,
                self.error,
                self.diagnose_button,
                self.diagnosis,
            ]
        )
        self.add_class("easnb-ui")

    # -- token ---------------------------------------------------------------------

    def set_token(self, token: str | None, source: str = "typed") -> None:
        """Keep ``token`` Python-side; the field only says that one is set."""
        try:
            self._token = clean_token(token)
        except EasnbError as exc:
            self._show_error(exc)
            return
        self._token_source = source if self._token else ""
        self.token_field.placeholder = (
            f"token set ({source}, hidden): type to replace" if self._token else "paste the service token"
        )

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def _on_token_message(self, _: Any, content: dict[str, Any], buffers: Any) -> None:
        if content.get("type") == "connect":
            if content.get("token"):
                self.set_token(content["token"])
            self.connect()

    def headers(self) -> dict[str, str]:
        """The Advanced fold's headers, one ``name: value`` per line."""
        headers = {}
        for line in self.headers_field.value.splitlines():
            if line.strip():
                name, sep, value = line.partition(":")
                if not sep:
                    raise EasnbError(f"Header line {line.strip()!r} has no ':'.", hint="Write one 'name: value' per line.")
                headers[name.strip()] = value.strip()
        return headers

    # -- connecting ------------------------------------------------------------------

    def on_connect(self, callback: Callable[[Connection], Any]) -> None:
        """Call ``callback(connection)`` after every successful Connect."""
        self._callbacks.append(callback)

    def connect(self, wait: bool = False) -> None:
        """Connect in the background (as the button does); ``wait=True`` blocks until done."""
        if self._background.busy:
            return
        self.token_field.busy = True
        self.error.value = ""
        self._background.start(self._connect, wait)

    def wait(self, timeout: float | None = None) -> None:
        """Block until a Connect in progress has finished."""
        self._background.wait(timeout)

    def settings(self) -> Settings:
        """The settings the form describes: its fields on top of the widget's ``options``."""
        options = dict(self._options)
        keepalive = dataclasses.replace(options.pop("keepalive", Keepalive()), time_s=self.keepalive_field.value)
        headers = {**options.pop("headers", {}), **self.headers()}
        options.pop("timeout", None)
        return make_settings(
            self.endpoint_field.value, self._token, self.timeout_field.value, keepalive=keepalive, headers=headers, **options
        )

    def _connect(self) -> None:
        try:
            conn = Connection(self.settings())
            try:
                found = conn.discover()
            except BaseException:
                conn.close()
                raise
            old, self.connection, self.discovery = self.connection, conn, found
            self.diagnosis.value = ""  # an earlier diagnosis no longer describes this connection
            connected = status_html(found, self._token_source)
            self.status.value = connected
            self._follow = Follow(conn, connected, lambda line: self._show_state(conn, line))
            if old is not None:
                old.close(replaced_by="widget.connection")
            for callback in self._callbacks:
                callback(conn)
        except EasnbError as exc:
            self._show_error(exc)
        except Exception as exc:  # a callback's own error: show it, keep the widget usable
            self._show_error(EasnbError(f"{type(exc).__name__}: {exc}", hint="This came from an on_connect callback."))
        finally:
            self.token_field.busy = False

    def _show_state(self, conn: Connection, line: Markup) -> None:
        if conn is self.connection:  # not one the widget has replaced since
            self.status.value = line

    def diagnose(self, wait: bool = False) -> None:
        """Run ``easnb.doctor`` on the form's endpoint and token in the background; the steps show below."""
        from .doctor import doctor

        def work() -> None:
            self.diagnose_button.disabled = True
            self.diagnosis.value = "<i>diagnosing…</i>"
            try:
                try:
                    where: Any = self.settings()
                except EndpointError:  # the doctor's first step says what is wrong with the endpoint
                    where = self.endpoint_field.value
                self.diagnosis.value = doctor(where, timeout=self.timeout_field.value)._repr_html_()
            except Exception as exc:
                self.diagnosis.value = error_html(exc)
            finally:
                self.diagnose_button.disabled = False

        thread = threading.Thread(target=work, name="easnb-doctor", daemon=True)
        thread.start()
        if wait:
            thread.join()

    def _show_error(self, exc: EasnbError) -> None:
        if self.connection is None or self.connection.closed:  # a failed reconnect leaves a working connection alone
            self.status.value = error_line(exc)
        self.error.value = error_html(exc)

    def __repr__(self) -> str:
        state = repr(self.connection) if self.connection else "not connected"
        return f"<ConnectionWidget {state}>"
