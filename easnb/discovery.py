"""What an endpoint speaks: V2 or not, the standard health service, server reflection.

Behind an EAS gateway a wrong token is refused (UNAUTHENTICATED) before the service
is reached, so UNIMPLEMENTED to a V2 call made with the token means the token was
accepted and the service is simply not a V2 server.

>>> conn.discover().summary()       # doctest: +SKIP
'not a V2 server (token accepted) · health SERVING · services: helloworld.GreeterService'
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc

from .calls import Ask, Plan
from .errors import EasnbError, NotFoundError, UnimplementedError
from .markup import html
from .readiness import health_plan
from .results import ServerMetadata


_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


@dataclass(frozen=True)
class Discovery:
    """What ``Connection.discover()`` found; ``None`` where the server does not say."""

    endpoint: str
    v2: bool
    token_sent: bool
    rtt_ms: float
    live: bool | None = None
    ready: bool | None = None
    server: ServerMetadata | None = None
    health: str | None = None
    services: tuple[str, ...] | None = None
    reflection: str | None = None

    @property
    def other_services(self) -> tuple[str, ...]:
        """Services besides V2, health and reflection: the ones a service inspector is for."""
        skip = ("inference.GRPCInferenceService", "grpc.health.v1.Health")
        return tuple(s for s in self.services or () if s not in skip)

    def summary(self) -> str:
        """One line: what the endpoint is, its health, and its services."""
        if self.v2:
            name = f"{self.server.name} {self.server.version}".strip() if self.server else "V2 server"
            parts = [f"V2 server {name}", "live" if self.live else "not live", "ready" if self.ready else "not ready"]
        else:
            parts = ["not a V2 server" + (" (token accepted)" if self.token_sent else "")]
        if self.health:
            parts.append(f"health {self.health}")
        if self.services is not None:
            parts.append(f"services: {', '.join(self.services) or 'none'}")
        elif not self.v2:
            parts.append("no server reflection: call it with conn.service('file.proto', 'package.Service')")
        return " \u00b7 ".join(parts)

    def _repr_html_(self) -> str:
        return html("<div><b>{}</b>: {} ({:.1f} ms)</div>", self.endpoint, self.summary(), self.rtt_ms)


def discover_plan(target: str, token_sent: bool) -> Plan[Discovery]:
    """Ask the endpoint what it speaks. A wrong token or an unreachable endpoint raise as any call does."""
    started = time.perf_counter()
    try:
        live: bool | None = yield Ask("live")
        v2 = True
    except UnimplementedError:
        live, v2 = None, False
    rtt_ms = (time.perf_counter() - started) * 1000
    ready, server = None, None
    if v2:
        ready = yield Ask("ready")
        try:
            server = yield Ask("server_metadata")
        except UnimplementedError:
            server = None
    try:
        health: str | None = _STATUS.get((yield from health_plan()), "UNKNOWN")
    except (UnimplementedError, NotFoundError):
        health = None
    try:
        reflection = yield Ask("reflection")
        services: tuple[str, ...] | None = tuple(reflection.services())
        version: str | None = reflection.version
    except EasnbError as exc:  # no reflection offered, or grpcio-reflection not installed
        if exc.code not in (None, grpc.StatusCode.UNIMPLEMENTED):
            raise
        services, version = None, None
    return Discovery(target, v2, token_sent, rtt_ms, live, ready, server, health, services, version)
