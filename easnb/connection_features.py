"""What a sync connection offers beyond the V2 calls: streams, text generation, DataFrames,
statistics, load tests and any other gRPC service, each handed to the module that does it.

``Features`` is a mixin of ``Connection``; its methods see the connection only as a ``Link``
(``easnb.link``), the interface the feature modules are written against.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import arguments
from .inference import Inputs, Outputs
from .link import Link
from .scrubbing import scrubbing

if TYPE_CHECKING:
    import pandas as pd

    from .generate import Generation
    from .loadreport import LoadReport
    from .services import ServiceClient
    from .shared_stream import OpenStream
    from .statistics import ModelStatistics
    from .streaming import CallStream


@scrubbing()
class Features:
    """``Connection``'s streams, generation, ``infer_frame``, statistics, load tests and ``service``."""

    def stream(self: Link, model: str, inputs: Inputs | Any, outputs: Outputs = None, version: str = "",
               parameters: Mapping[str, Any] | None = None, request_id: str = "", **options: Any) -> CallStream:
        """Stream one request to a (decoupled) model: an iterator of ``InferResult``s, one per response.

        Takes what ``infer`` takes. It ends at the request's final response; ``break``, ``.cancel()``
        and Ctrl-C cancel it. ``timeout`` (seconds, default none) bounds the whole stream;
        ``first_response_timeout`` and ``between_responses_timeout`` (default: the connection's timeout)
        bound each wait. Raises ``StreamError`` for a failure inside the stream, ``DeadlineError`` for
        a timeout; both carry ``received`` and ``request_id``. See ``easnb.streaming``.
        """
        from .streaming import open_call

        return open_call(self, model, inputs, outputs=outputs, version=version, parameters=parameters,
                         request_id=request_id, **options)

    def open_stream(self: Link, model: str, **options: Any) -> OpenStream:
        """Several requests on one stream: ``s.submit(inputs)`` returns each request's own stream.

        ``options`` are ``stream``'s (``timeout`` and ``headers`` apply to the shared call, so ``submit`` refuses them);
        use it as a context manager, leaving it cancels what is still running.
        """
        from .shared_stream import open_shared

        return open_shared(self, model, **options)

    def generate(self: Link, model: str, prompt: str, **sampling: Any) -> Generation:
        """Generate text from a model that follows the vLLM or TensorRT-LLM conventions (``easnb.generate``).

        Iterate the returned ``Generation`` for text pieces as they arrive; then ``.text``,
        ``.finish_reason``, ``.tokens``, ``.time_to_first_token`` (s) and ``.inter_token_latencies`` (s).
        """
        from .generate import generate

        return generate(self, model, prompt, **sampling)

    def infer_frame(self: Link, model: str, frame: Any, batch_size: int = 1024, concurrency: int = 8, **options: Any) -> pd.DataFrame:
        """Score a whole DataFrame; the result is aligned with ``frame.index``.

        Batches of ``batch_size`` rows, up to ``concurrency`` in flight on this one
        channel, answers put back in order. See ``easnb.batch.infer_frame`` for
        ``outputs``, ``retries``, ``retry_deadline``, ``progress``, ``errors``,
        ``version``, ``timeout``, ``parameters``, ``headers`` and ``columns``.
        Batches that fail raise ``BatchError`` (with ``.partial`` and ``.failures``),
        or with ``errors="keep"`` come back as rows with an ``error`` column.
        Ctrl-C cancels what is in flight.
        """
        from .batch import frame_plan, infer_frame

        arguments.keywords(frame_plan, options, "infer_frame")
        return infer_frame(self, model, frame, batch_size, concurrency, **options)

    def model_statistics(self: Link, model: str = "", version: str = "", timeout: float | None = None) -> list[ModelStatistics]:
        """A list of ``ModelStatistics``, one per model version (all models when ``model`` is empty): counts
        and cumulative nanoseconds per stage, as Triton's statistics extension reports them.

        Raises ``UnimplementedError`` when the server does not offer it (KServe, MLServer),
        ``NotFoundError`` for an unknown model. See ``easnb.statistics``.
        """
        from .statistics import model_statistics

        return model_statistics(self, *arguments.model_call(model, version, timeout, None, "model"))

    def load_test(self: Link, target: Any, inputs: Any = None, **options: Any) -> LoadReport:
        """Throughput and latency at each level of load: a ``LoadReport`` with one row per level.

        ``target`` is a model name or a unary method of ``conn.service(...)``; give ``concurrency=[...]``
        (callers, closed loop) or ``rate=[...]`` (requests per second, open loop), ``seconds`` per level.
        Raises ``LoadTestError`` for a sweep that cannot start. See ``easnb.loadtest.load_test``.

        >>> conn.load_test("iris", {"features": x}, concurrency=[1, 4, 16], seconds=10).frame   # doctest: +SKIP
        """
        from .loadtest import load_test

        return load_test(self, target, inputs, **options)

    def service(self: Link, proto_or_name: str | Path, name: str | None = None, include: tuple[str | Path, ...] = ()) -> ServiceClient:
        """A client for any gRPC service, with this connection's token, headers and errors.

        ``service("pkg.Service")`` asks the server's reflection for it (no ``.proto``
        needed); ``service("file.proto", "pkg.Service")`` compiles the file.

        >>> greeter = conn.service("helloworld.GreeterService")   # doctest: +SKIP
        >>> greeter.SayHello(name="World").message                # doctest: +SKIP
        'Hello, World!'
        """
        from .services import ServiceClient, resolve

        return ServiceClient(self, resolve(self, *arguments.service_call(proto_or_name, name, include)))
