"""The connection widget's status line, and how it follows the connection after Connect.

Lights are a coloured dot and a word (no emoji font needed). After Connect the line follows the
connection: closed (``widget.connection.close()``), or the server gone (the channel lost it and
cannot reconnect), turns the lights grey with a line that says what to press; the server's return
brings the connected line back.

>>> lights(True, None)                                   # doctest: +ELLIPSIS
Markup("<span style='color:#2a9d3a'>&#9679;</span> live ...")
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import grpc

from .markup import Markup, html

GREEN, RED, GREY = "#2a9d3a", "#d33", "#999"
NOT_CONNECTED = "not connected: fill in the endpoint and the token, then press Connect"
CLOSED = "connection closed (widget.connection.close() was called): press Connect to open a new one"
# ipywidgets gives HTML a 28 px line height (one form row): tables, errors and bars in easnb's
# widgets (class easnb-ui) read better at text spacing. Put once in an HTML child of each.
STYLE = Markup("<style>.easnb-ui .widget-html-content { line-height: 1.45; }</style>")
PROBE_S = 10.0  # how long a dropped connection may take to come back before the server counts as gone


def light(name: str, on: bool | None) -> Markup:
    """A green, red or grey (unknown) dot and a word."""
    colour = GREY if on is None else (GREEN if on else RED)
    return html("<span style='color:{}'>&#9679;</span> {}", colour, name)


def lights(live: bool | None, ready: bool | None) -> Markup:
    return html("{} &nbsp; {}", light("live", live), light("ready", ready))


def line(live: bool | None, ready: bool | None, words: str) -> Markup:
    """Two lights and what to do, e.g. ``line(None, None, NOT_CONNECTED)``."""
    return html("{} &nbsp; <span class='easnb-state'>{}</span>", lights(live, ready), words)


def status_html(found: Any, token_source: str) -> Markup:
    """The connected line: what the endpoint speaks, its health and services, the round trip."""
    token = f"token {token_source}" if token_source else "no token"
    if found.v2:
        server = found.server
        name = html("<b>{}</b> {}", server.name, server.version) if server else Markup("<b>V2 server</b>")
        extensions = ", ".join(server.extensions) if server and server.extensions else "none"
        head = html("{} &nbsp; {} &nbsp; extensions: {}", lights(found.live, found.ready), name, extensions)
    else:
        accepted = " (token accepted)" if found.token_sent else ""
        head = html("{} &nbsp; <b>not a V2 server</b>{}", light("answers", True), accepted)
    details = []
    if found.health:
        details.append(f"health {found.health}")
    if found.other_services:
        details.append("services: " + ", ".join(found.other_services))
    elif found.services is None and not found.v2:
        details.append("no server reflection: use conn.service('file.proto', 'package.Service')")
    extra = html(" &nbsp; {}", " · ".join(details)) if details else ""
    return html("{}{}<br><small>{} &middot; {} &middot; round trip {:.1f} ms</small>", head, extra, found.endpoint, token, found.rtt_ms)


def error_line(exc: BaseException) -> Markup:
    """The line after a failed Connect: the live light is green when the server answered (a refused
    token is an answer), red when nothing did, grey when the form itself was wrong."""
    code = getattr(exc, "code", None)
    if code is None:
        return line(None, None, "not connected: the error below says what to fix, then press Connect")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return line(True, None, "the server answered but refused the token: paste the right one and press Connect")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return line(False, None, "no answer: check the endpoint (Diagnose walks the path), then press Connect")
    return line(True, None, "the server answered with an error (below): fix what it says, then press Connect")


def gone_line(since: str) -> Markup:
    return line(None, None, f"the server stopped answering at {since}: start it (or check the network), then press Connect")


class Follow:
    """Keeps ``show(line)`` in step with ``conn``: closed, the server gone, and back again.

    ``connected`` is the line to show while all is well. Push, not polling: the connection's
    ``on_close`` and the channel's connectivity (``grpc.Channel.subscribe``). When the channel
    drops to idle after being ready, one reconnection is tried; failing it, the server is gone.
    """

    def __init__(self, conn: Any, connected: Markup, show: Callable[[Markup], None]) -> None:
        self.conn, self.connected, self.show = conn, connected, show
        self.state = "connected"
        self._ready_seen = False
        self._probing: Any = None  # the reconnection being tried, if any
        conn.on_close(self._closed)
        conn.channel.subscribe(self._changed, try_to_connect=False)

    def _closed(self) -> None:
        self.state = "closed"
        self.show(line(None, None, CLOSED))

    def _changed(self, connectivity: grpc.ChannelConnectivity) -> None:
        if self.conn.closed:
            return
        if connectivity is grpc.ChannelConnectivity.READY:
            self._ready_seen = True
            if self.state == "gone":
                self.state = "connected"
                self.show(self.connected)
        elif connectivity is grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            if self.state == "connected":
                self.state = "gone"
                self.show(gone_line(time.strftime("%H:%M:%S")))
        elif connectivity is grpc.ChannelConnectivity.IDLE and self._ready_seen and self.state == "connected":
            self._probe()  # the server closed the connection, or it idled out: is anyone there?

    def _probe(self) -> None:
        if self._probing is not None and not self._probing.done():
            return  # one at a time, however often a server drops the connection
        try:
            self._probing = grpc.channel_ready_future(self.conn.channel)
        except ValueError:  # closed meanwhile
            return
        timer = threading.Timer(PROBE_S, self._probing.cancel)
        timer.daemon = True
        timer.start()
        self._probing.add_done_callback(lambda _: timer.cancel())  # over: its thread ends now, not PROBE_S later
