"""The embedded demo: an EAS-like service on loopback, with no cloud account.

>>> from easnb import demo
>>> with demo.serve() as server:                     # doctest: +SKIP
...     conn = easnb.connect(server.endpoint, token=server.token)
"""

from __future__ import annotations

from .gateway import Gateway
from .model import Model
from .models import all_models
from .server import DemoServer
from .service import V2Service

__all__ = ["DemoServer", "Gateway", "Model", "V2Service", "all_models", "serve"]


def serve(token: str | None = None, host: str = "127.0.0.1", port: int = 0) -> DemoServer:
    """Start the demo in background threads and return it (a context manager that stops it).

    A random token is made when none is given; ``server.endpoint`` and ``server.token``
    are what ``easnb.connect`` needs.
    """
    return DemoServer(token=token, host=host, port=port).start()
