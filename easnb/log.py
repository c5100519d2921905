"""easnb's log: ``logging.getLogger("easnb")``, silent unless you turn it on.

DEBUG: one record per call (method, target, status, latency, attempt). INFO: retries,
connections lost and made again (with the keepalive's part when it noticed the loss), and
``infer_frame`` deciding the server is gone. No record ever holds the token: records name
the method and the target, and errors' texts are redacted before they get here.

>>> import logging
>>> logging.basicConfig()
>>> logging.getLogger("easnb").setLevel(logging.DEBUG)    # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import grpc

LOGGER = logging.getLogger("easnb")
LOGGER.addHandler(logging.NullHandler())
DEBUG, INFO = logging.DEBUG, logging.INFO

__all__ = ["LOGGER", "ConnectivityLog", "call_done", "debugging", "failed", "gone", "retrying"]


def debugging() -> bool:
    """Whether per-call records are wanted (checked once per call, so a call pays almost nothing)."""
    return LOGGER.isEnabledFor(DEBUG)


def call_done(method: str, target: str, status: str, started: float, attempt: int = 1) -> None:
    """The DEBUG record of one finished call; ``started`` is its ``time.perf_counter()``."""
    ms = (time.perf_counter() - started) * 1000
    LOGGER.debug("%s on %s: %s in %.2f ms (attempt %d)", method, target, status, ms, attempt,
                 extra={"method": method, "target": target, "status": status, "latency_ms": ms, "attempt": attempt})


def retrying(method: str, target: str, error: Any, attempt: int, pause: float) -> None:
    """The INFO record of a call sent again; ``error`` is the ``EasnbError`` that caused it."""
    status = error.code.name if getattr(error, "code", None) is not None else type(error).__name__
    LOGGER.info("%s on %s: %s, trying again in %.2f s (attempt %d)", method, target, status, pause, attempt + 1,
                extra={"method": method, "target": target, "status": status, "attempt": attempt + 1})
    if _by_keepalive(error):
        LOGGER.info("%s: keepalive found the connection dead; gRPC connects again", target, extra={"target": target})


def failed(error: Any, target: str) -> None:
    """An INFO record when a failed call says keepalive noticed a dropped connection."""
    if _by_keepalive(error):
        LOGGER.info("%s: keepalive found the connection dead; gRPC connects again", target, extra={"target": target})


def gone(target: str, model: str, failures: int, left: int) -> None:
    """The INFO record of ``infer_frame`` deciding the server is gone."""
    LOGGER.info("%s: %d batches in a row found the server gone (model %s); %d batches not sent", target, failures, model, left,
                extra={"target": target, "model": model})


def _by_keepalive(error: Any) -> bool:
    details = str(getattr(error, "details", "")).lower()
    return "keepalive" in details or "ping timeout" in details


class ConnectivityLog:
    """INFO records when a channel's connection is lost and made again (a sync channel's state, watched).

    Watches only when INFO is on at the start (watching costs a gRPC polling thread); ``close()`` stops it.
    """

    def __init__(self, channel: Any, target: str) -> None:
        self._channel = channel
        self._target = target
        self._last: grpc.ChannelConnectivity | None = None
        self._lock = threading.Lock()
        self._watching = LOGGER.isEnabledFor(INFO) and hasattr(channel, "subscribe")
        if self._watching:
            channel.subscribe(self._changed, try_to_connect=False)

    def _changed(self, state: grpc.ChannelConnectivity) -> None:
        with self._lock:
            last, self._last = self._last, state
        ready = grpc.ChannelConnectivity.READY
        if state is ready and last is not None and last is not ready and self._seen_ready:
            LOGGER.info("%s: connected again", self._target, extra={"target": self._target})
        elif state is ready:
            LOGGER.debug("%s: connected", self._target, extra={"target": self._target})
        elif last is ready and state in (grpc.ChannelConnectivity.IDLE, grpc.ChannelConnectivity.TRANSIENT_FAILURE):
            LOGGER.info("%s: connection lost (%s)", self._target, state.name, extra={"target": self._target})
        if state is ready:
            self._seen_ready = True

    _seen_ready = False

    def close(self) -> None:
        if self._watching:
            self._watching = False
            try:
                self._channel.unsubscribe(self._changed)
            except ValueError:  # already gone with the channel
                pass
