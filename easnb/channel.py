"""The gRPC channel arguments under a connection: keepalive, message limits, reconnects (see ``settings``).

>>> Keepalive().time_s
300.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from .errors import EasnbError


@dataclass(frozen=True)
class Keepalive:
    """HTTP/2 keepalive pings, on idle connections too, as the EAS guide asks.

    Idle connections are dropped silently by load balancers and NAT gateways (AWS
    NLB and NAT after 350 s, Alibaba Cloud SLB and NAT after 900 s, GCP NAT after
    1200 s), so by default a ping goes out after 300 s without traffic, calls in
    flight or not. 300 s is as often as a stock gRPC server accepts pings while
    calls run (``grpc.http2.min_ping_interval_without_data_ms``, 5 minutes), so a
    long call is never cut by a GOAWAY "too_many_pings". The trade-off: a stock
    server allows idle pings only every 2 hours, so it may close an idle
    connection after about 20 minutes; the next call reconnects by itself and
    nothing fails. A middlebox that drops sooner than 300 s (Azure's load balancer
    at 240 s) needs a shorter ``time_s`` and a server that permits it.

    ``timeout_s`` bounds how long an unanswered ping waits before the connection is
    declared dead, so a silent drop is noticed within ``time_s + timeout_s``.
    """

    time_s: float = 300.0
    timeout_s: float = 20.0
    permit_without_calls: bool = True

    def options(self) -> list[tuple[str, int]]:
        if not (self.time_s > 0 and self.timeout_s > 0):
            raise EasnbError("Keepalive times must be positive seconds.", hint="e.g. Keepalive(time_s=300, timeout_s=20).")
        timeout_ms = int(self.timeout_s * 1000)
        return [
            ("grpc.keepalive_time_ms", int(self.time_s * 1000)),
            ("grpc.keepalive_timeout_ms", timeout_ms),
            # without it an unanswered ping waits 60 s, whatever keepalive_timeout_ms says
            ("grpc.http2.ping_timeout_ms", timeout_ms),
            ("grpc.keepalive_permit_without_calls", int(self.permit_without_calls)),
            ("grpc.http2.max_pings_without_data", 0),
        ]


def channel_options(
    keepalive: Keepalive = Keepalive(), max_message_bytes: int = -1, options: Mapping[str, Any] | None = None
) -> list[tuple[str, Any]]:
    """gRPC channel arguments: message limits (none by default), keepalive, quick reconnects."""
    settings = {
        "grpc.max_send_message_length": max_message_bytes,
        "grpc.max_receive_message_length": max_message_bytes,
        # reconnect within about a second of a server coming back, not minutes later
        "grpc.min_reconnect_backoff_ms": 200,
        "grpc.initial_reconnect_backoff_ms": 200,
        "grpc.max_reconnect_backoff_ms": 1000,
        "grpc.primary_user_agent": "easnb",
        **dict(keepalive.options()),
        **(options or {}),
    }
    return list(settings.items())


def refuse_pickle(what: str) -> EasnbError:
    return EasnbError(
        f"{what} cannot be pickled: it holds an open channel and the token.",
        hint="Pass the endpoint and read the token where the work runs; easnb.dask.infer_partitions does this for Dask.",
    )
