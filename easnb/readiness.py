"""Wait until a service is ready: V2 readiness, the standard health service, or any answer.

>>> conn.wait_until_ready("iris", timeout=600)   # doctest: +SKIP
'model iris ready'
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any

from . import _proto
from ._proto import HEALTH_SERVICE, method_path
from .calls import Ask, Pause, Plan, Unary, run_plan
from .errors import AuthenticationError, DeadlineError, EasnbError, UnimplementedError
from .progress import Waiting

SERVING = 1


def health_plan(service: str = "", timeout: float | None = None) -> Plan[int]:
    """``grpc.health.v1.Health/Check``: the serving status (1 is SERVING) of ``service`` ("" = the server)."""
    reply = yield Unary(
        method_path(HEALTH_SERVICE, "Check"), _proto.HealthCheckRequest(service=service), _proto.HealthCheckResponse,
        timeout, idempotent=False,
    )
    return int(reply.status)


def health_check(conn: Any, service: str = "", timeout: float | None = None) -> int:
    """``health_plan`` on a sync connection."""
    return run_plan(conn, health_plan(service, timeout))


class _Probe:
    """One readiness question, falling back from V2 to health to "it answers" as the server shows."""

    def __init__(self, model: str | None) -> None:
        self.model = model
        self.kind = "v2"

    def ready(self, timeout: float) -> Plan[tuple[bool, str]]:
        model = self.model
        if self.kind == "v2":
            try:
                if model:
                    ok = yield Ask("model_ready", (model,), {"timeout": timeout})
                    return ok, f"model {model} {'ready' if ok else 'not ready'}"
                ok = yield Ask("ready", (), {"timeout": timeout})
                return ok, f"server {'ready' if ok else 'not ready'}"
            except UnimplementedError:
                if model:
                    raise EasnbError(
                        f"This service is not a V2 inference server, so it has no model {model!r} to wait for.",
                        hint="Call wait_until_ready() without a model to wait for the service itself.",
                    ) from None
                self.kind = "health"
        if self.kind == "health":
            try:
                status = yield from health_plan(timeout=timeout)
                name = _proto.HealthCheckResponse.ServingStatus.Name(status) if status in (0, 1, 2, 3) else str(status)
                return status == SERVING, f"health {name}"
            except UnimplementedError:
                self.kind = "answers"
        # neither V2 nor health: the service is up when it answers at all (UNIMPLEMENTED is an answer)
        try:
            yield Ask("live", (), {"timeout": timeout})
        except UnimplementedError:
            pass
        return True, "service answers (no readiness API)"


def wait_plan(target: str, default_timeout: float | None, model: str | None = None, timeout: float = 600,
              progress: bool = True) -> Plan[str]:
    """See ``Connection.wait_until_ready``: the same for sync and asyncio connections."""
    probe = _Probe(model)
    ends = time.monotonic() + timeout
    state, pause = "not asked yet", 0.25
    what = f"model {model}" if model else target
    with Waiting(f"waiting for {what}", timeout) if progress else nullcontext() as line:
        while True:
            left = ends - time.monotonic()
            try:
                ok, state = yield from probe.ready(max(0.05, min(left, default_timeout or 10.0)))
            except AuthenticationError:
                raise  # waiting does not fix a wrong token
            except EasnbError as exc:
                if exc.code is None:
                    raise
                ok, state = False, f"{exc.code.name}: {exc.details or exc.message}"[:200]
            if line is not None:
                line.update(state)
            if ok:
                if line is not None:
                    line.done()
                return state
            if time.monotonic() + pause >= ends:
                raise DeadlineError(
                    f"{model or target} was not ready within {timeout:g} s; last state: {state}.",
                    hint="A service that is deploying or scaling can take minutes: wait longer "
                    "(timeout=...), or check its status and logs in the PAI-EAS console.",
                )
            yield Pause(pause)
            pause = min(pause * 1.6, 5.0)
