"""``textgen``: the demo's decoupled text model, shaped like Triton's vLLM backend.

Inputs ``text_input`` (BYTES [1]), and optionally ``stream`` (BOOL [1]), ``sampling_parameters``
(BYTES [1], a JSON object: ``max_tokens`` (default 16), ``temperature``, ``top_p``, ... accepted and,
the model being deterministic, ignored) and ``exclude_input_in_output`` (BOOL [1]). Each streamed
response holds the new text in ``text_output`` (BYTES [1]), with ``finish_reason`` (BYTES [1]:
empty until the last token, then ``length`` or ``stop``) and ``num_output_tokens`` (UINT32 [1]).

The answer is ``" You said: <prompt>."`` cut into words, one word per response, a few
milliseconds apart (request parameter ``delay_ms``, default 5). For tests: a prompt containing
``fail`` fails after two tokens; ``max_tokens: 0`` gives no response at all.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping

import numpy as np

from ..results import ModelMetadata, TensorMetadata
from .model import Arrays, Model, Outputs

DEFAULT_MAX_TOKENS = 16  # vLLM's default
DELAY_MS = 5.0
FAIL_AFTER = 2
_WORDS = re.compile(r"\s*\S+")


class GenerationFailed(RuntimeError):
    """The ``fail`` trigger: the model fails mid-generation, as a real one may."""


def _scalar(x: Arrays, name: str, default: object) -> object:
    if name not in x or x[name].size == 0:
        return default
    return x[name].reshape(-1)[0]


def _settings(x: Arrays) -> tuple[str, dict[str, object], bool, bool]:
    raw = _scalar(x, "text_input", b"")
    prompt = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    text = _scalar(x, "sampling_parameters", b"{}")
    try:
        sampling = json.loads(text.decode("utf-8") if isinstance(text, bytes) else str(text) or "{}")
    except ValueError as exc:
        raise ValueError(f"sampling_parameters is not JSON: {exc}") from None
    if not isinstance(sampling, dict):
        raise ValueError("sampling_parameters must be a JSON object")
    return prompt, sampling, bool(_scalar(x, "stream", False)), bool(_scalar(x, "exclude_input_in_output", False))


def _response(text: str, finish: str, tokens: int) -> Outputs:
    return {
        "text_output": ("BYTES", np.array([text.encode("utf-8")], dtype=object)),
        "finish_reason": ("BYTES", np.array([finish.encode()], dtype=object)),
        "num_output_tokens": ("UINT32", np.array([tokens], np.uint32)),
    }


def generate(x: Arrays, _: Mapping[str, str], parameters: Mapping[str, object]) -> Iterator[Outputs | tuple[Outputs, bool]]:
    """The responses of one request (streamed: one per token; otherwise one with all the text)."""
    prompt, sampling, stream, exclude_input = _settings(x)
    max_tokens = sampling.get("max_tokens", DEFAULT_MAX_TOKENS)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 0 <= max_tokens <= 4096:
        raise ValueError(f"max_tokens must be an integer from 0 to 4096, not {max_tokens!r}")
    words = _WORDS.findall(f" You said: {' '.join(prompt.split())}.")
    tokens = words[:max_tokens]
    finish = "stop" if len(tokens) == len(words) else "length"
    delay = max(0.0, float(parameters.get("delay_ms", DELAY_MS) or 0)) / 1000  # type: ignore[arg-type]
    produced = []
    for i, token in enumerate(tokens):
        if "fail" in prompt and i == FAIL_AFTER:
            raise GenerationFailed(f"textgen failed on purpose after {FAIL_AFTER} tokens (the prompt says 'fail')")
        if delay:
            time.sleep(delay)
        produced.append(token)
        if stream:
            yield _response(token, finish if i == len(tokens) - 1 else "", 1)
    if not stream and tokens:
        yield _response(("" if exclude_input else prompt) + "".join(produced), finish, len(produced)), True


def textgen() -> Model:
    """The decoupled model (Triton's vLLM conventions); unary ModelInfer refuses it as Triton does."""
    inputs = [
        TensorMetadata("text_input", "BYTES", (1,)),
        TensorMetadata("stream", "BOOL", (1,)),
        TensorMetadata("sampling_parameters", "BYTES", (1,)),
        TensorMetadata("exclude_input_in_output", "BOOL", (1,)),
    ]
    outputs = [
        TensorMetadata("text_output", "BYTES", (-1,)),
        TensorMetadata("finish_reason", "BYTES", (-1,)),
        TensorMetadata("num_output_tokens", "UINT32", (-1,)),
    ]
    meta = ModelMetadata(
        "textgen", ("1",), "easnb-demo/decoupled", tuple(inputs), tuple(outputs),
        {"description": "a deterministic decoupled text generator (vLLM-shaped)", "decoupled": "true"},
    )

    def refuse(x: Arrays, types: Mapping[str, str]) -> Outputs:
        raise AssertionError("a decoupled model is only ever streamed")

    return Model(meta, refuse, stream=generate, optional=frozenset({"stream", "sampling_parameters", "exclude_input_in_output"}))
