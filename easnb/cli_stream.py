"""``easnb stream`` and ``easnb generate``: streamed inference from the shell.

    easnb stream localhost:50051 textgen --inputs '{"text_input": ["hi"], "stream": [true]}'
    easnb generate localhost:50051 textgen "Tell me a story" --max-tokens 32 --param top_p=0.9

``stream`` prints one JSON document per response as it arrives (``"final": true`` on the
request's last; a flags-only final response prints as one with no outputs); a JSON object given
for a BYTES input (``"sampling_parameters": [{"max_tokens": 8}]``) goes as its JSON text. ``generate`` prints
the text as it arrives and, on standard error, the finish reason, token count and latencies.
``--timeout`` bounds each wait for a response, ``--max-time`` the whole stream. Exit status as
for ``call``: 0, 1 for an error (an in-stream one too), 2 for a usage error, 130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from .errors import EasnbError
from .terminal import visible, visible_json, visible_text


def _usage(message: str, hint: str = "") -> EasnbError:
    from .services import RequestError  # exit status 2, as for call's bad --data

    return RequestError(message, hint=hint or None)


def typed_inputs(conn: Any, model: str, version: str, text: str) -> dict[str, Any]:
    """``--inputs`` JSON as tensors typed by the model's metadata."""
    import numpy as np

    from .tensors import Tensor

    try:
        given = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _usage(f"--inputs is not JSON: {exc}.", 'Give e.g. \'{"text_input": ["hi"], "stream": [true]}\'.') from None
    if not isinstance(given, dict) or not given:
        raise _usage("--inputs must be a JSON object of input name -> nested list.")
    meta = conn.cached_model_metadata(model, version)
    inputs = {}
    for name, value in given.items():
        datatype = meta.input(name).datatype
        if datatype == "BYTES" and isinstance(value, list):  # {"max_tokens": 8} in sampling_parameters: its JSON text
            value = [json.dumps(v) if isinstance(v, dict) else v for v in value]  # was: "has a dict", exit 1
        try:  # numpy's own type, as `easnb infer` does: the encoder converts it without loss or says why not
            array = value if datatype == "BYTES" else np.asarray(value)
            if datatype not in ("BYTES", "BOOL") and array.dtype.kind == "U":  # JSON numbers in quotes
                array = np.asarray(value, dtype=np.float64)
        except ValueError as exc:  # was: forced into the datatype's dtype, so "false" became True and 0.5 became 0
            raise _usage(f"--inputs: input {name!r} is not a rectangular array of {datatype} values: {exc}",
                         "Give every row the same length, e.g. [[1, 2], [3, 4]]; true/false for BOOL.") from None
        inputs[name] = Tensor(array, datatype)
    return inputs


def _param(pair: str) -> tuple[str, Any]:
    key, sep, value = pair.partition("=")
    if not sep or not key:
        raise _usage(f"{pair!r} is not k=v.", "e.g. --param top_p=0.9 --param stop='[\"\\n\"]'")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a plain word is a string


def _interruptible(run: Callable[[], int]) -> int:
    try:
        return run()
    except KeyboardInterrupt:  # the stream was cancelled on the way out
        print("\ninterrupted: the request was cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `| head -1`: the reader left, the stream was cancelled on the way out; say nothing
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's own flush at exit cannot fail again
        os.close(devnull)
        return 141  # 128 + SIGPIPE, as a shell tool killed by the broken pipe



def stream(args: argparse.Namespace) -> int:
    from .cli_connect import connection_from

    def run() -> int:
        with connection_from(args) as conn:
            inputs = typed_inputs(conn, args.model, args.version, args.inputs)
            parameters = dict(_param(p) for p in args.parameter or ())
            responses = conn.stream(args.model, inputs, version=args.version, parameters=parameters,
                                    timeout=args.max_time, bytes_as_str=True)
            count = 0
            for result in responses:
                document = {"final": result.parameters.get("triton_final_response") is True,
                            "after_ms": round((responses.arrivals[-1] - responses.sent_at) * 1000, 3), **result.to_dict()}
                print(visible_json(json.dumps(document, ensure_ascii=False)), flush=True)
                count += 1
            if not count or not responses.responses[-1].parameters.get("triton_final_response"):
                after = round(((responses.arrivals or [responses.sent_at])[-1] - responses.sent_at) * 1000, 3)
                print(visible_json(json.dumps({"final": True, "after_ms": after, "model_name": args.model, "id": responses.request_id,
                                  "outputs": []})), flush=True)
        return 0

    return _interruptible(run)


def generate(args: argparse.Namespace) -> int:
    from .cli_connect import connection_from

    sampling = dict(_param(p) for p in args.param or ())
    from .generate import STREAM_OPTIONS  # generate's own flags and stream options: a --param would collide

    taken = sorted(set(sampling) & {"model", "prompt", "max_tokens", "temperature", *STREAM_OPTIONS})  # prompt, model: TypeError
    if taken:
        raise _usage(f"--param {', '.join(taken)} is not a sampling setting of its own.",
                     "Give the model and prompt as arguments; --max-tokens, --temperature, --version and --max-time for those.")

    def run() -> int:
        with connection_from(args) as conn:
            g = conn.generate(args.model, args.prompt, max_tokens=args.max_tokens, temperature=args.temperature,
                              version=args.version, timeout=args.max_time, **sampling)
            started = time.perf_counter()
            for piece in g:
                sys.stdout.write(visible_text(piece))  # a server's text: its escape sequences shown, not run
                sys.stdout.flush()
            print()
            ttft = g.time_to_first_token
            gaps = sorted(g.inter_token_latencies)
            summary = [f"finish_reason: {g.finish_reason or '-'}", f"tokens: {g.tokens}",
                       f"time to first token: {ttft * 1000:.1f} ms" if ttft is not None else "no tokens",
                       f"tokens/s: {g.tokens_per_second:.1f}" if g.tokens_per_second else "",
                       f"median inter-token: {gaps[len(gaps) // 2] * 1000:.1f} ms" if gaps else "",
                       f"total: {(time.perf_counter() - started) * 1000:.0f} ms"]
            print(visible("  ".join(s for s in summary if s)), file=sys.stderr)
        return 0

    return _interruptible(run)


def register(client: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Add ``stream`` and ``generate`` through ``__main__``'s ``client(name, help)``."""
    p = client("stream", "stream a request to a (decoupled) model; one JSON document per response")
    p.add_argument("model")
    p.add_argument("--inputs", required=True, help='JSON object of input name -> nested list, e.g. \'{"text_input": ["hi"]}\'')
    p.add_argument("--version", default="")
    p.add_argument("--parameter", action="append", metavar="K=V", help="a request parameter (V as JSON, else text)")
    p.add_argument("--max-time", type=float, metavar="SECONDS", help="bound on the whole stream (default: none)")
    p.set_defaults(run=stream)
    p = client("generate", "generate text with a vLLM- or TensorRT-LLM-style model, printed as it arrives")
    p.add_argument("model")
    p.add_argument("prompt")
    p.add_argument("--max-tokens", type=int, metavar="N")
    p.add_argument("--temperature", type=float)
    p.add_argument("--param", action="append", metavar="K=V", help="another sampling setting (V as JSON, else text)")
    p.add_argument("--version", default="")
    p.add_argument("--max-time", type=float, metavar="SECONDS", help="bound on the whole generation (default: none)")
    p.set_defaults(run=generate)
