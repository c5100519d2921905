"""Score a Dask DataFrame across workers: one connection per worker process, the token from its environment.

Neither a channel nor the token goes into the task graph: each task carries the
endpoint, the model and the *name* of the environment variable that holds the token.

>>> scores = infer_partitions(ddf, "my-service.123.cn-hangzhou.pai-eas.aliyuncs.com:80", "iris")  # doctest: +SKIP
>>> scores.compute()                                                                             # doctest: +SKIP

Needs ``pip install 'easnb[dask]'``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from .connection import Connection, connect
from .errors import EasnbError

try:
    import dask.dataframe as dd
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError("easnb.dask needs Dask: pip install 'easnb[dask]'") from None


def _worker_connection(endpoint: str, token_env: str, timeout: float | None) -> Connection:
    """This worker process's connection to ``endpoint``, opened on first use and kept on the worker."""
    try:
        from distributed import get_worker

        holder: Any = get_worker()
    except (ImportError, ValueError):  # not on a distributed worker: keep it on the thread
        holder = threading.current_thread()
    cache = holder.__dict__.setdefault("_easnb_connections", {})
    key = (endpoint, token_env, timeout)
    conn = cache.get(key)
    if conn is None or conn.closed:
        token = os.environ.get(token_env)
        if token is None:
            raise EasnbError(
                f"The environment variable {token_env} is not set on this worker.",
                hint="Start the workers with the token in their environment (e.g. LocalCluster(env=...) "
                "or your cluster's secret mechanism); easnb never puts it in the task graph.",
            )
        conn = cache[key] = connect(endpoint, token=token, timeout=timeout)
    return conn


def score_partition(
    partition: Any, endpoint: str, model: str, token_env: str = "EASNB_TOKEN", timeout: float | None = 30.0, **options: Any
) -> Any:
    """Score one partition with ``infer_frame`` on this worker's connection (no progress bar)."""
    conn = _worker_connection(endpoint, token_env, timeout)
    return conn.infer_frame(model, partition, progress=False, **options)


def infer_partitions(
    ddf: dd.DataFrame,
    endpoint: str,
    model: str,
    token_env: str = "EASNB_TOKEN",
    timeout: float | None = 30.0,
    meta: Any = None,
    **options: Any,
) -> dd.DataFrame:
    """``ddf`` scored by ``model``, partition by partition, aligned with its index.

    ``options`` go to ``Connection.infer_frame`` (``batch_size``, ``concurrency``, ``retries``,
    ``errors``). ``meta`` (the empty result frame) is asked of the service with one row
    when not given.
    """
    if meta is None:
        sample = ddf.head(1, compute=True)
        meta = score_partition(sample, endpoint, model, token_env, timeout, **options).iloc[:0]
    return ddf.map_partitions(score_partition, endpoint, model, token_env, timeout, meta=meta, **options)
