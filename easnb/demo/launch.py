"""Run a user's unchanged ``server.py`` on a loopback address of our choosing.

The EAS guide's ``server.py`` listens on ``[::]:50051``, every interface. For a
local try we run it as it is, but every ``add_insecure_port`` it makes binds the
address we give instead (127.0.0.1 and a free port by default).

    python -m easnb.demo.launch server.py 127.0.0.1:50052
"""

from __future__ import annotations

import runpy
import sys

from grpc import _server  # the class grpc.server() returns


def run_script(path: str, bind: str) -> None:
    """Run ``path`` as ``__main__`` with its server's ports redirected to ``bind``."""
    original = _server._Server.add_insecure_port

    def add_insecure_port(self: object, address: str) -> int:
        print(f"[easnb] {path} asked for {address}; listening on {bind} (loopback) instead", flush=True)
        return original(self, bind)

    _server._Server.add_insecure_port = add_insecure_port  # type: ignore[method-assign]
    sys.argv = [path]
    runpy.run_path(path, run_name="__main__")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m easnb.demo.launch SERVER.py HOST:PORT")
    run_script(sys.argv[1], sys.argv[2])
