"""A recorded generation (the workbench's Generate tab) as code: easnb or tritonclient.

Both ask for the end-of-request marker (easnb always does; tritonclient with
``enable_empty_final_response=True``), so the pasted code knows when the answer is over. Values enter the code only through ``code_literals.literal`` (``repr``) and ``shlex.quote``;
the token stays in ``$EASNB_TOKEN``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .code_literals import TOKEN_HEADER, array_literal, call_headers, connect_line, literal
from .stream_wire import FINAL

if TYPE_CHECKING:
    from .call_record import Call


def easnb(call: Call) -> str:
    """``conn.generate`` printing the text as it arrives, then the finish reason and latency."""
    r = call.request
    version = f", version={literal(r['version'])}" if r.get("version") else ""
    return "\n".join([
        "import os", "", "import easnb", "", connect_line(call),
        f"g = conn.generate({literal(r['model'])}, {literal(r['prompt'])}{version}, **{literal(r.get('sampling') or {})})",
        "for piece in g:",
        '    print(piece, end="", flush=True)',
        "print()",
        "print(g.finish_reason, g.tokens, 'tokens, first after', g.time_to_first_token, 's')",
    ]) + "\n"


def tritonclient(call: Call) -> str:
    """tritonclient's ``start_stream`` + ``async_stream_infer``, with the final-response flag asked for."""
    r = call.request
    ssl = ", ssl=True" if call.tls else ""
    lines = [
        "import os", "import queue", "", "import numpy as np", "import tritonclient.grpc as grpcclient", "",
        f"client = grpcclient.InferenceServerClient({literal(call.target)}{ssl})",
        'token = os.environ.get("EASNB_TOKEN")',
        f"headers = {literal(call_headers(call))}",
        "if token:",
        f'    headers["authorization"] = {TOKEN_HEADER}',
        "inputs = []",
    ]
    for name, t in r["inputs"].items():
        lines += [
            f"x = grpcclient.InferInput({literal(name)}, {literal(list(t['array'].shape))}, {literal(t['datatype'])})",
            f"x.set_data_from_numpy({array_literal(t['array'], t['datatype'])})",
            "inputs.append(x)",
        ]
    version = f", model_version={literal(r['version'])}" if r.get("version") else ""
    lines += [
        "responses = queue.Queue()",
        "client.start_stream(callback=lambda result, error: responses.put((result, error)), headers=headers or None)",
        f"client.async_stream_infer({literal(r['model'])}, inputs{version}, enable_empty_final_response=True)",
        "while True:",
        "    result, error = responses.get()",
        "    if error is not None:",
        "        raise error",
        '    text = result.as_numpy("text_output")',
        "    if text is not None:",
        '        print(b"".join(text.reshape(-1)).decode(), end="", flush=True)',
        f"    if result.get_response().parameters[{literal(FINAL)}].bool_param:",
        "        break",
        "client.stop_stream()",
        "print()",
    ]
    return "\n".join(lines) + "\n"
