"""The command line: ``python -m easnb {ping,metadata,infer,demo,gateway} ...``.

The token comes from ``--token`` or ``EASNB_TOKEN`` and is never printed, except
by ``demo`` and ``gateway``, which print the token they made so you can use it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from .connection import connect
from .errors import EasnbError


def _connection(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    return connect(args.endpoint, token=args.token or os.environ.get("EASNB_TOKEN"), timeout=args.timeout)


def ping(args: argparse.Namespace) -> int:
    with _connection(args) as conn:
        meta = conn.server_metadata()
        print(f"endpoint: {conn.endpoint.target}")
        print(f"live: {conn.live()}")
        print(f"ready: {conn.ready()}")
        print(f"server: {meta.name} {meta.version}")
        print(f"extensions: {', '.join(meta.extensions) or 'none'}")
    return 0


def metadata(args: argparse.Namespace) -> int:
    with _connection(args) as conn:
        meta = conn.model_metadata(args.model, args.version)
        ready = conn.model_ready(args.model, args.version)
    print(f"model: {meta.name}  versions: {', '.join(meta.versions) or '-'}  platform: {meta.platform or '-'}  ready: {ready}")
    for key, value in meta.properties.items():
        print(f"  {key}: {value}")
    for kind, tensors in (("input", meta.inputs), ("output", meta.outputs)):
        for t in tensors:
            print(f"{kind:<7} {t.name:<20} {t.datatype:<6} {list(t.shape)}")
    return 0


def infer(args: argparse.Namespace) -> int:
    import numpy as np

    try:
        given = json.loads(args.inputs)
    except json.JSONDecodeError as exc:
        raise EasnbError(f"--inputs is not JSON: {exc}.", hint='Give e.g. \'{"TEXT": ["hello"]}\'.') from None
    with _connection(args) as conn:
        meta = conn.cached_model_metadata(args.model, args.version)
        inputs = {}
        for name, value in given.items():
            from .tensors import DATATYPES, Tensor

            datatype = meta.input(name).datatype
            dtype = DATATYPES[datatype].dtype if datatype not in ("BF16", "BYTES") else None
            inputs[name] = Tensor(np.asarray(value, dtype=dtype) if dtype else value, datatype)
        result = conn.infer(args.model, inputs, version=args.version, bytes_as_str=True)
    for name, array in result.items():
        print(f"{name} {result.datatypes[name]} {list(array.shape)}")
        print(array)
    return 0


def demo(args: argparse.Namespace) -> int:
    from .demo import DemoServer

    server = DemoServer(token=args.token, host=args.host, port=args.port).start()
    print(f"easnb demo listening on {server.endpoint}")
    print(f"  endpoint: {server.endpoint}")
    print(f"  token:    {server.token or '(none: no token check)'}")
    print("  models:   add_sub, iris, text, echo; service helloworld.GreeterService")
    print(f"  try:      EASNB_TOKEN=<token> python -m easnb ping {server.endpoint}")
    print("Press Ctrl-C to stop.", flush=True)
    return _serve_until_interrupted(server)


def gateway(args: argparse.Namespace) -> int:
    from .demo import Gateway

    gw = Gateway(args.backend, token=args.token, host=args.host, port=args.port).start()
    print(f"easnb gateway listening on {gw.endpoint}, forwarding to {args.backend}")
    print(f"  token:    {gw.token or '(none: no token check)'}")
    print("Press Ctrl-C to stop.", flush=True)
    return _serve_until_interrupted(gw)


def _serve_until_interrupted(server) -> int:  # type: ignore[no-untyped-def]
    import signal

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        server.wait()
    except KeyboardInterrupt:
        print("stopping", flush=True)
        server.stop(grace=1.0)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m easnb", description="Call EAS and V2 inference services.")
    sub = top.add_subparsers(dest="command", required=True)

    def client(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("endpoint", help="console address or host:port")
        p.add_argument("--token", help="service token (default: $EASNB_TOKEN)")
        p.add_argument("--timeout", type=float, default=5.0, help="seconds per call (default 5)")
        return p

    client("ping", "live, ready and server metadata").set_defaults(run=ping)
    p = client("metadata", "a model's metadata")
    p.add_argument("model")
    p.add_argument("--version", default="")
    p.set_defaults(run=metadata)
    p = client("infer", "run a model on JSON inputs")
    p.add_argument("model")
    p.add_argument("--inputs", required=True, help='JSON object of input name -> nested list, e.g. \'{"TEXT": ["hi"]}\'')
    p.add_argument("--version", default="")
    p.set_defaults(run=infer)

    for name, run, help in (("demo", demo, "run the embedded demo service"), ("gateway", gateway, "run a token gateway")):
        p = sub.add_parser(name, help=help)
        p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
        p.add_argument("--port", type=int, default=50051 if name == "demo" else 8080)
        p.add_argument("--token", help="token clients must send (default: a random one)")
        if name == "gateway":
            p.add_argument("--backend", required=True, help="host:port of the gRPC server behind the gateway")
        p.set_defaults(run=run)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except EasnbError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
