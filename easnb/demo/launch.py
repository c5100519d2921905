"""Run a user's unchanged ``server.py`` on a loopback address of our choosing.

The EAS guide's ``server.py`` listens on ``[::]:50051``, every interface. For a
local try we run it as it is, but every port it asks for, plaintext or TLS, on a
``grpc.server()`` or a ``grpc.aio.server()``, binds the address we give instead
(127.0.0.1 and a free port by default).

    python -m easnb.demo.launch server.py 127.0.0.1:50052
"""

from __future__ import annotations

import runpy
import sys
from typing import Any

from grpc import _server  # the class grpc.server() returns
from grpc.aio import _server as _aio_server  # the class grpc.aio.server() returns


def _redirect(cls: Any, method: str, path: str, bind: str) -> None:
    original = getattr(cls, method)

    def redirected(self: object, address: str, *args: Any) -> Any:
        print(f"[easnb] {path} asked for {address}; listening on {bind} (loopback) instead", flush=True)
        return original(self, bind, *args)

    setattr(cls, method, redirected)


def run_script(path: str, bind: str) -> None:
    """Run ``path`` as ``__main__`` with every port its server asks for redirected to ``bind``."""
    for cls in (_server._Server, _aio_server.Server):
        for method in ("add_insecure_port", "add_secure_port"):
            _redirect(cls, method, path, bind)
    sys.argv = [path]
    runpy.run_path(path, run_name="__main__")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m easnb.demo.launch SERVER.py HOST:PORT")
    run_script(sys.argv[1], sys.argv[2])
