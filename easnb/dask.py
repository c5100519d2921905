"""Score a Dask DataFrame across workers: one connection per worker process, the token from its environment.

Neither a channel nor the token goes into the task graph: each task carries the
connection's settings without the token (so TLS roots, headers, keepalive, limits and
interceptors reach the workers), the model and the *name* of the environment variable
that holds the token.

>>> scores = infer_partitions(ddf, "my-service.123.cn-hangzhou.pai-eas.aliyuncs.com:80", "iris")  # doctest: +SKIP
>>> scores.compute()                                                                             # doctest: +SKIP

Needs ``pip install 'easnb[dask]'``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from .connection import Connection
from .credentials import clean_token
from .endpoint import Endpoint
from .errors import EasnbError
from .settings import Settings, make_settings

try:
    import dask.dataframe as dd
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError("easnb.dask needs Dask: pip install 'easnb[dask]'") from None


def _settings(where: str | Endpoint | Settings | Connection, timeout: float | None) -> Settings:
    """What a task carries: the settings, never the token (the workers read it from their environment)."""
    if isinstance(where, Connection):
        where = where.settings
    if isinstance(where, Settings):
        return where.replace(token=None, timeout=timeout)
    return make_settings(where, None, timeout)


def _worker_connection(settings: Settings, token_env: str) -> Connection:
    """This worker process's connection for ``settings``, opened on first use and kept on the worker."""
    try:
        from distributed import get_worker

        holder: Any = get_worker()
    except (ImportError, ValueError):  # not on a distributed worker: keep it on the thread
        holder = threading.current_thread()
    cache: dict[Any, Connection] = holder.__dict__.setdefault("_easnb_connections", {})
    try:
        key: Any = (hash(settings), settings, token_env)
    except TypeError:  # an unhashable raw option: one connection per settings object
        key = (id(settings), token_env)
    conn = cache.get(key)
    if conn is None or conn.closed:
        token = os.environ.get(token_env)
        if token is None:
            raise EasnbError(
                f"The environment variable {token_env} is not set on this worker.",
                hint="Start the workers with the token in their environment (e.g. LocalCluster(env=...) "
                "or your cluster's secret mechanism); easnb never puts it in the task graph.",
            )
        conn = cache[key] = Connection(settings.replace(token=clean_token(token)))
    return conn


def score_partition(
    partition: Any,
    endpoint: str | Endpoint | Settings,
    model: str,
    token_env: str = "EASNB_TOKEN",
    timeout: float | None = 30.0,
    **options: Any,
) -> Any:
    """Score one partition with ``infer_frame`` on this worker's connection (no progress bar)."""
    conn = _worker_connection(_settings(endpoint, timeout), token_env)
    return conn.infer_frame(model, partition, progress=False, **options)


def infer_partitions(
    ddf: dd.DataFrame,
    endpoint: str | Endpoint | Settings | Connection,
    model: str,
    token_env: str = "EASNB_TOKEN",
    timeout: float | None = 30.0,
    meta: Any = None,
    **options: Any,
) -> dd.DataFrame:
    """``ddf`` scored by ``model``, partition by partition, aligned with its index.

    ``endpoint`` is an endpoint text, or a ``Connection`` (or its ``settings``) whose every
    setting but the token the workers use; the token comes from ``token_env`` on each worker.

    ``options`` go to ``Connection.infer_frame`` (``batch_size``, ``concurrency``, ``retries``,
    ``errors``). ``meta`` (the empty result frame) is asked of the service with one row
    when not given.
    """
    settings = _settings(endpoint, timeout)
    if meta is None:
        sample = ddf.head(1, compute=True)
        meta = score_partition(sample, settings, model, token_env, timeout, **options).iloc[:0]
    scored: dd.DataFrame = ddf.map_partitions(  # type: ignore[no-untyped-call]  # dask leaves map_partitions unannotated
        score_partition, settings, model, token_env, timeout, meta=meta, **options)
    return scored
