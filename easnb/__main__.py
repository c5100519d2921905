"""The command line: ``python -m easnb {ping,wait,metadata,infer,stream,generate,load,compare,list,describe,call,demo,gateway} ...``.

``list``, ``describe`` and ``call`` work with any gRPC service, with grpcurl's habits:
server reflection when offered, ``--proto FILE`` otherwise, JSON in and out.

Tokens come from ``EASNB_TOKEN`` or ``--token-file FILE``; ``--token T`` works too
but warns, since every local user sees it in ``ps`` and it lands in shell history.
A token is never printed, except by ``demo`` and ``gateway`` when they made one up.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli_connect import connection_from, read_headers, read_token  # noqa: F401 - read_* used by other commands
from .errors import EasnbError, NotFoundError, UsageError
from .terminal import visible, visible_json


def wait(args: argparse.Namespace) -> int:
    with connection_from(args) as conn:
        state = conn.wait_until_ready(args.model, timeout=args.wait)  # a line per change on stderr when not a terminal
    print(visible(f"{conn.endpoint.target}: {state}"))
    return 0


def ping(args: argparse.Namespace) -> int:
    with connection_from(args) as conn:
        meta = conn.server_metadata()
        print(f"endpoint: {conn.endpoint.target}")
        print(f"live: {conn.live()}")
        print(f"ready: {conn.ready()}")
        print(visible(f"server: {meta.name} {meta.version}"))
        print(visible(f"extensions: {', '.join(meta.extensions) or 'none'}"))
    return 0


def metadata(args: argparse.Namespace) -> int:
    with connection_from(args) as conn:
        meta = conn.model_metadata(args.model, args.version)
        ready = conn.model_ready(args.model, args.version)
    print(visible(f"model: {meta.name}  versions: {', '.join(meta.versions) or '-'}  platform: {meta.platform or '-'}  ready: {ready}"))
    for key, value in meta.properties.items():
        print(visible(f"  {key}: {value}"))
    for kind, tensors in (("input", meta.inputs), ("output", meta.outputs)):
        for t in tensors:
            print(visible(f"{kind:<7} {t.name:<20} {t.datatype:<6} {list(t.shape)}"))
    return 0


def infer(args: argparse.Namespace) -> int:
    import numpy as np

    try:
        given = json.loads(args.inputs)
    except json.JSONDecodeError as exc:
        raise EasnbError(f"--inputs is not JSON: {exc}.", hint='Give e.g. \'{"TEXT": ["hello"]}\'.') from None
    if not isinstance(given, dict):
        raise EasnbError(f"--inputs must be a JSON object of input name -> values, not a JSON {type(given).__name__}.",
                         hint='Give e.g. \'{"TEXT": ["hello"]}\'.')
    with connection_from(args) as conn:
        meta = conn.cached_model_metadata(args.model, args.version)
        inputs = {}
        for name, value in given.items():
            from .tensors import Tensor

            datatype = meta.input(name).datatype
            try:  # numpy's own type; the encoder converts it to the datatype without loss, or says why not
                array = np.asarray(value) if datatype != "BYTES" else value
                if datatype not in ("BYTES", "BOOL") and array.dtype.kind == "U":  # JSON numbers in quotes
                    array = np.asarray(value, dtype=np.float64)
            except ValueError as exc:
                raise EasnbError(f"--inputs: input {name!r} is not a rectangular array of {datatype} values: {exc}",
                                 hint="Give every row the same length, e.g. [[1, 2], [3, 4]].") from None
            inputs[name] = Tensor(array, datatype)
        result = conn.infer(args.model, inputs, version=args.version, bytes_as_str=True)
    for name, array in result.items():
        print(visible(f"{name} {result.datatypes[name]} {list(array.shape)}"))
        print("\n".join(visible(line) for line in str(array).splitlines()))
    return 0


def list_services(args: argparse.Namespace) -> int:
    with connection_from(args) as conn:
        if not args.service:
            print("\n".join(visible(name) for name in conn.services()))  # as conn.services(): health listed, reflection itself not
            return 0
        service = _descriptor(conn, args.service, args)
        print("\n".join(visible(f"{service.full_name}.{m.name}") for m in service.methods))
    return 0


def describe(args: argparse.Namespace) -> int:
    from .reflection import describe as text

    with connection_from(args) as conn:
        print("\n".join(visible(line) for line in text(conn.reflection().symbol(args.symbol)).splitlines()))
    return 0


def call(args: argparse.Namespace) -> int:
    """``easnb call``: replies as JSON, one document each; every failure an EasnbError, never a traceback."""
    try:
        return _call(args)
    except (EasnbError, KeyboardInterrupt):
        raise
    except Exception as exc:  # what easnb did not foresee still reads as one line, typed
        raise EasnbError(
            f"easnb call {args.method} failed: {type(exc).__name__}: {exc}",
            hint="This is easnb's fault, not yours: please report it with the command that shows it.",
        ) from None


def _call(args: argparse.Namespace) -> int:
    from .services import ServiceClient, iter_replies

    service_name, _, method_name = args.method.replace("/", ".").rpartition(".")
    if not service_name:
        raise UsageError(f"{args.method!r} is not SERVICE/METHOD, e.g. helloworld.GreeterService/SayHello.")
    requests = read_requests(args.data)
    with connection_from(args) as conn:
        client = ServiceClient(conn, _descriptor(conn, service_name, args))
        if method_name not in client.methods:
            near = difflib.get_close_matches(method_name, list(client.methods), n=1)
            raise NotFoundError(f"{service_name} has no method {method_name!r}. Methods: {', '.join(client.methods)}.",
                                hint=f"Did you mean {service_name}/{near[0]}?" if near else
                                f"easnb list {shlex.quote(args.endpoint)} {shlex.quote(service_name)} shows its methods.")
        method = client.methods[method_name]
        if method.client_streaming:
            answer = method(requests)
        elif len(requests) != 1:
            raise UsageError(f"{args.method} takes one request; --data holds {len(requests)}.")
        else:
            answer = method(requests[0] if requests[0] else None)
        for reply in iter_replies(answer):
            print(visible_json(json.dumps(method.to_json(reply), indent=2, ensure_ascii=False)), flush=True)
    return 0


def read_requests(data: str | None) -> list[dict]:  # type: ignore[type-arg]
    """JSON requests from ``--data JSON``, ``--data @FILE`` or standard input: one object, an array, or several objects."""
    if data is None:
        text = "" if sys.stdin.isatty() else sys.stdin.read()
    elif data.startswith("@"):
        try:
            text = Path(data[1:]).read_text()
        except OSError as exc:
            raise UsageError(f"Cannot read {data[1:]!r}: {exc.strerror}.") from None
    else:
        text = data
    decoder, items, position = json.JSONDecoder(), [], 0
    text = text.strip()
    while position < len(text):
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--data is not JSON: {exc}.", hint='Give e.g. \'{"name": "World"}\'.') from None
        items.extend(value if isinstance(value, list) else [value])
        position = end
        while position < len(text) and text[position].isspace():
            position += 1
    if any(not isinstance(item, dict) for item in items):
        raise UsageError("Each request must be a JSON object.")
    return items or [{}]


def _descriptor(conn, name: str, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .services import descriptor_from_proto, descriptor_from_server

    if args.proto:
        for proto in args.proto:
            try:
                return descriptor_from_proto(proto, name, args.import_path or ())
            except NotFoundError:
                continue
        raise NotFoundError(f"No service {name!r} in {', '.join(args.proto)}.")
    return descriptor_from_server(conn, name)


def notebooks(args: argparse.Namespace) -> int:
    from .tutorials import copy_to, notebooks as shipped, refresh

    if args.refresh:
        for name, action in refresh(args.folder).items():
            print(f"  {name}: {action}")
        print(f"Tutorial notebooks in {Path(args.folder).resolve()} (edited ones are kept; delete one to get it afresh).")
        return 0
    copied = copy_to(args.folder, overwrite=args.overwrite)
    kept = len(shipped()) - len(copied)
    print(f"Copied {len(copied)} tutorial notebooks to {Path(args.folder).resolve()}" + (f" ({kept} already there, kept)" if kept else "") + ".")
    print(f"Open them:  jupyter lab {shlex.quote(args.folder)}")
    print("They use the embedded demo server, or your service when EASNB_ENDPOINT and EASNB_TOKEN are set.")
    return 0


def eas_local(args: argparse.Namespace) -> int:
    from .eas.signature import AccessKey
    from .eas.standin import LocalEas

    key = AccessKey.generate()  # a throwaway pair, shown once: it opens only this stand-in
    log = (lambda name, line: print(visible(f"[{name}] {line}"), file=sys.stderr, flush=True))
    stand_in = LocalEas(args.oss_root, port=args.port, region=args.region, access_key=key, log=log).start()
    print(f"easnb EAS stand-in listening on {stand_in.endpoint} (region {args.region}), OSS at {stand_in.oss_root}")
    print("  the SDK must sign with this AccessKey pair, made for this run (set it where you call from):")
    print(f"    export ALIBABA_CLOUD_ACCESS_KEY_ID={shlex.quote(key.id)} ALIBABA_CLOUD_ACCESS_KEY_SECRET={shlex.quote(key.secret)}")
    print(f"  use: easnb.eas.ControlPlane({args.region!r}, endpoint={stand_in.endpoint!r})")
    print("Press Ctrl-C to stop.", flush=True)
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    stand_in.stop()
    return 0


def _token_line(given: str | None, made: str) -> str:
    if not made:
        return "(none: no token check)"
    return "(the one you gave)" if given is not None else made


def _try_line(given: str | None, made: str, endpoint: str) -> str:
    """A command line that works when pasted: this Python (``python`` may be another one, without easnb),
    the token the demo made (a token the user gave is never printed)."""
    command = f"{shlex.quote(sys.executable)} -m easnb ping {shlex.quote(endpoint)}"
    if given is not None:
        return f"{command}   (with EASNB_TOKEN set to the token you gave)" if given else command
    return f"EASNB_TOKEN={shlex.quote(made)} {command}" if made else command


def demo(args: argparse.Namespace) -> int:
    from .demo import DemoServer

    token = read_token(args)
    server = DemoServer(token=token, host=args.host, port=args.port).start()
    print(f"easnb demo listening on {server.endpoint}")
    print(f"  endpoint: {server.endpoint}")
    print(f"  token:    {_token_line(token, server.token)}")
    print("  models:   add_sub, iris, text, echo, textgen (streams); service helloworld.GreeterService")
    print(f"  try:      {_try_line(token, server.token, server.endpoint)}")
    print("Press Ctrl-C to stop.", flush=True)
    return _serve_until_interrupted(server)


def gateway(args: argparse.Namespace) -> int:
    from .demo import Gateway

    token = read_token(args)
    backend_token = read_token(args, "backend-", "EASNB_BACKEND_TOKEN")
    gw = Gateway(args.backend, token=token, host=args.host, port=args.port, backend_token=backend_token).start()
    print(f"easnb gateway listening on {gw.endpoint}, forwarding to {args.backend}")
    print(f"  token:    {_token_line(token, gw.token)}")
    print(f"  backend:  {'gets its own token' if backend_token else 'gets no token'}")
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


def proto_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--proto", action="append", metavar="FILE", help="a .proto file (default: server reflection)")
    p.add_argument("--import-path", action="append", metavar="DIR", help="where imported .proto files are")


def token_options(p: argparse.ArgumentParser, what: str, prefix: str = "") -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(f"--{prefix}token-file", metavar="FILE", help=f"file holding the {what}")
    group.add_argument(f"--{prefix}token", help="the token itself (discouraged: visible in ps)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="easnb", description="Call EAS and V2 inference services.")
    sub = top.add_subparsers(dest="command", required=True)

    def client(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("endpoint", help="console address or host:port")
        token_options(p, "service token")
        p.add_argument("--timeout", type=float, default=5.0, help="seconds per call (default 5)")
        p.add_argument("--header", action="append", metavar="K:V", help="extra call metadata, repeatable")
        p.add_argument("--keepalive", type=float, metavar="SECONDS", help="ping interval (default 300)")
        return p

    client("ping", "live, ready and server metadata").set_defaults(run=ping)
    p = client("wait", "wait until the server (or a model) is ready")
    p.add_argument("--model", help="wait for this model instead of the server")
    p.add_argument("--wait", type=float, default=600, metavar="SECONDS", help="how long at most (default 600)")
    p.set_defaults(run=wait)
    p = client("list", "the services a server offers (reflection), or a service's methods")
    p.add_argument("service", nargs="?")
    proto_options(p)
    p.set_defaults(run=list_services)
    p = client("describe", "a service, method, message or enum, as .proto text (reflection)")
    p.add_argument("symbol")
    p.set_defaults(run=describe)
    p = client("call", "call any method with JSON; prints each reply as JSON")
    p.add_argument("method", metavar="SERVICE/METHOD", help="e.g. helloworld.GreeterService/SayHello")
    p.add_argument("--data", "-d", help="the request as JSON, or @FILE; default: standard input")
    proto_options(p)
    p.set_defaults(run=call)
    p = client("metadata", "a model's metadata")
    p.add_argument("model")
    p.add_argument("--version", default="")
    p.set_defaults(run=metadata)
    p = client("infer", "run a model on JSON inputs")
    p.add_argument("model")
    p.add_argument("--inputs", required=True, help='JSON object of input name -> nested list, e.g. \'{"TEXT": ["hi"]}\'')
    p.add_argument("--version", default="")
    p.set_defaults(run=infer)
    from .cli_perf import add_commands  # load and compare

    add_commands(sub, client, connection_from, read_token, token_options)
    from .cli_stream import register

    register(client)

    p = sub.add_parser("notebooks", help="copy the tutorial notebooks into a folder")
    p.add_argument("folder", nargs="?", default="easnb-tutorials", help="where to (default: ./easnb-tutorials)")
    p.add_argument("--overwrite", action="store_true", help="replace notebooks that are already there")
    p.add_argument("--refresh", action="store_true", help="replace copies whose cells you have not edited by newer tutorials")
    p.set_defaults(run=notebooks)
    p = sub.add_parser("eas-local", help="a local stand-in of the EAS control plane, running services for real")
    p.add_argument("--port", type=int, default=8089)
    p.add_argument("--oss-root", required=True, metavar="DIR", help="the folder standing in for OSS: oss://bucket/path/ is DIR/bucket/path/")
    p.add_argument("--region", default="cn-hangzhou")
    p.set_defaults(run=eas_local)

    for name, run, help in (("demo", demo, "run the embedded demo service"), ("gateway", gateway, "run a token gateway")):
        p = sub.add_parser(name, help=help)
        p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
        p.add_argument("--port", type=int, default=50051 if name == "demo" else 8080)
        token_options(p, "token clients must send (default: $EASNB_TOKEN, else a random one)")
        if name == "gateway":
            p.add_argument("--backend", required=True, help="host:port of the gRPC server behind the gateway")
            token_options(p, "token sent to the backend (default: $EASNB_BACKEND_TOKEN, else none)", "backend-")
        p.set_defaults(run=run)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from .services import RequestError

    try:
        return int(args.run(args))
    except (UsageError, RequestError) as exc:
        print(f"usage error: {shown(exc)}", file=sys.stderr)
        return 2
    except EasnbError as exc:
        print(f"error: {shown(exc)}", file=sys.stderr)
        return getattr(args, "error_code", 1)  # compare: 1 says "they differ", so a failure is 2
    except Exception as exc:  # never a traceback: one line, typed, control characters visible, no token
        from .redaction import redact

        text = f"{type(exc).__name__}: {exc}"
        for secret in {os.environ.get("EASNB_TOKEN"), os.environ.get("EASNB_TOKEN_B"), getattr(args, "token", None)} - {None}:
            text = redact(text, secret)
        print(f"error: easnb {args.command} failed: {visible(text)}", file=sys.stderr)
        return getattr(args, "error_code", 1)


def shown(error: EasnbError) -> str:
    """An error for the terminal: its message and hint, each on one line, control characters made visible."""
    return visible(error.message) + (f"\nHint: {visible(error.hint)}" if error.hint else "")


if __name__ == "__main__":
    sys.exit(main())
