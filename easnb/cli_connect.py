"""The command line's way to a connection: the token (``--token-file``, ``$EASNB_TOKEN``, ``--token``)
and ``--header`` options read into the arguments ``connect()`` takes. Below ``__main__`` and the
command modules it registers (``cli_stream``), so they share it without importing each other."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .channel import Keepalive
from .connection import connect
from .errors import EasnbError


def read_token(args: argparse.Namespace, prefix: str = "", env: str = "EASNB_TOKEN") -> str | None:
    """The token from ``--{prefix}token-file``, ``${env}`` or (with a warning) ``--{prefix}token``."""
    option = f"--{prefix}token"
    given: str | None = getattr(args, f"{prefix.replace('-', '_')}token", None)
    path = getattr(args, f"{prefix.replace('-', '_')}token_file", None)
    if given is not None:
        print(
            f"warning: {option} puts the token where every local user can read it (ps, shell history); "
            f"use {env}=... or {option}-file FILE instead.",
            file=sys.stderr,
        )
        return given
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise EasnbError(f"Cannot read {option}-file {path!r}: {exc.strerror}.") from None
    return os.environ.get(env)


def read_headers(pairs: Sequence[str] | None) -> dict[str, str]:
    """``--header K:V`` options as a dict."""
    headers = {}
    for pair in pairs or ():
        key, sep, value = pair.partition(":")
        if not sep or not key.strip():
            raise EasnbError(f"--header {pair!r} is not K:V.", hint="e.g. --header x-request-id:42")
        headers[key.strip()] = value.strip()
    return headers


def connection_from(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The connection a command's ``--endpoint``, token, ``--timeout``, ``--header`` and ``--keepalive`` ask for."""
    keepalive = Keepalive(time_s=args.keepalive) if args.keepalive else Keepalive()
    return connect(
        args.endpoint, token=read_token(args), timeout=args.timeout, headers=read_headers(args.header), keepalive=keepalive
    )
