"""Text generation over ``ModelStreamInfer``, for models that follow the LLM serving conventions.

>>> g = conn.generate("textgen", "Tell me a story", max_tokens=32, temperature=0.7)  # doctest: +SKIP
>>> for piece in g:                                                               # doctest: +SKIP
...     print(piece, end="", flush=True)
>>> g.finish_reason, g.tokens, g.time_to_first_token                              # doctest: +SKIP

The model's metadata says which convention it follows:

- vLLM (Triton's vLLM backend): ``text_input`` and ``sampling_parameters`` (a JSON object holding
  ``max_tokens``, ``temperature`` and any other sampling setting), ``stream`` and
  ``exclude_input_in_output`` when the model has them.
- TensorRT-LLM (its ensemble): ``text_input``, ``max_tokens`` and one input per sampling setting
  (``temperature``, ``top_k``, ``top_p``, ``stop_words``, ...), each shaped and typed as the model says.

Every response's ``text_output`` is new text; ``finish_reason`` and ``num_output_tokens`` are read
when the model sends them.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from . import arguments
from .errors import ArgumentError, EasnbError, InvalidArgumentError, TensorError, scrub
from .inference import not_unicode
from .dtypes import DATATYPES
from .metadata import listed, short
from .results import InferResult, ModelMetadata
from .stream_plans import StreamOutputs
from .tensors import Tensor

TEXT_IN, TEXT_OUT = "text_input", "text_output"
#: Keyword arguments of ``generate`` that are stream options, not sampling settings.
STREAM_OPTIONS = ("version", "timeout", "headers", "first_response_timeout", "between_responses_timeout",
                  "flavour", "parameters", "request_id")


def convention(meta: ModelMetadata) -> str:
    """``"vllm"`` or ``"trtllm"`` from the model's inputs; ``InvalidArgumentError`` listing them otherwise."""
    names = {t.name for t in meta.inputs}
    outputs = {t.name for t in meta.outputs}
    if TEXT_IN in names and (TEXT_OUT in outputs or not outputs):
        if "sampling_parameters" in names:
            return "vllm"
        if "max_tokens" in names:
            return "trtllm"
    takes = listed([f"{short(t.name)} ({short(t.datatype)} {reprlib.repr(list(t.shape))})" for t in meta.inputs], "inputs")
    gives = listed([short(t.name) for t in meta.outputs], "outputs")  # was: every one, a hostile server's 1 MB of names
    raise InvalidArgumentError(
        f"Model {meta.name!r} does not follow the text generation conventions: it takes {takes} and gives {gives}.",
        hint="generate() needs text_input with sampling_parameters (vLLM) or max_tokens (TensorRT-LLM), and "
        "text_output; for any other model use conn.stream(model, inputs).",
    )


def _scalar(meta: ModelMetadata, name: str, value: Any) -> Tensor:
    """``value`` as the model's input ``name``: its datatype, one element in as many dimensions as it has."""
    spec = meta.input(name)
    shape = [1] * max(len(spec.shape), 1)
    values = value if isinstance(value, (list, tuple)) else [value]
    if spec.datatype == "BYTES":
        try:
            array = np.array([v.encode("utf-8") if isinstance(v, str) else v for v in values], dtype=object)
        except UnicodeEncodeError as exc:  # was: raised as it was, from inside the list
            raise not_unicode(exc, f"Input {name!r}") from None
    else:
        dtype = DATATYPES[spec.datatype].dtype if spec.datatype != "BF16" else np.float32
        try:
            array = np.asarray(values, dtype=dtype)
            exact = array.dtype.kind not in "iub" or array.tolist() == list(values)  # 1.5 is not top_k=1
        except (TypeError, ValueError, OverflowError):
            exact = False
        if not exact:
            kind = {"b": "True or False", "i": "a whole number", "u": "a whole number"}.get(np.dtype(dtype).kind, "a number")
            raise ArgumentError(
                f"{name}={reprlib.repr(value)} does not fit the model's input {name} ({spec.datatype}).",
                argument=name, hint=f"Give {name} as {kind} in {spec.datatype}'s range.")
    if len(values) != 1:
        shape = [*shape[:-1], len(values)]
    return Tensor(array.reshape(shape), spec.datatype)


def build_inputs(meta: ModelMetadata, prompt: str, sampling: Mapping[str, Any]) -> dict[str, Tensor]:
    """The request's inputs for ``prompt`` and the sampling settings (``None`` values left out)."""
    if not isinstance(prompt, str):
        raise InvalidArgumentError(f"The prompt must be a str, not {type(prompt).__name__}.")
    kind = convention(meta)
    names = {t.name for t in meta.inputs}
    settings = {k: v for k, v in sampling.items() if v is not None}
    if TEXT_IN in settings:  # was: sent instead of the prompt (TensorRT-LLM), or inside sampling_parameters (vLLM)
        raise ArgumentError(f"{TEXT_IN}= is the prompt: give it as generate's second argument.", argument=TEXT_IN,
                            hint='For example conn.generate(model, "Tell me a story", max_tokens=32).')
    for name, check in (("max_tokens", arguments.count), ("temperature", arguments.number), ("top_p", arguments.number)):
        if name in settings:
            settings[name] = check(settings[name], name)
    inputs = {TEXT_IN: _scalar(meta, TEXT_IN, prompt)}
    if "stream" in names:
        inputs["stream"] = _scalar(meta, "stream", True)
    if kind == "vllm":
        if "exclude_input_in_output" in names:
            inputs["exclude_input_in_output"] = _scalar(meta, "exclude_input_in_output", True)
        try:  # allow_nan=False: json.dumps wrote NaN and Infinity, which are not JSON
            text = json.dumps(settings, allow_nan=False, default=_json_value)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"The sampling settings cannot be JSON: {exc} ({reprlib.repr(settings)}).",
                                       hint="Give numbers that are finite, and str, list or dict values.") from None
        inputs["sampling_parameters"] = _scalar(meta, "sampling_parameters", text)
        return inputs
    unknown = sorted(set(settings) - names)
    if unknown:
        raise InvalidArgumentError(
            f"Model {meta.name!r} has no input for {', '.join(unknown)}.",
            hint=f"Its inputs are {', '.join(sorted(names))}; each sampling setting is one of them (TensorRT-LLM).",
        )
    for name, value in settings.items():
        inputs[name] = _scalar(meta, name, value)
    return inputs


class Generation:
    """The text of one generation, piece by piece: iterate it, then read the totals.

    ``text`` (the pieces joined), ``finish_reason`` (``"stop"``, ``"length"``, ... or ``None``),
    ``tokens`` (``num_output_tokens`` summed, else the responses that held text),
    ``time_to_first_token`` and ``inter_token_latencies`` (seconds), ``stream`` (the ``Stream``:
    results, ``arrivals`` and ``sent_at``). ``cancel()`` stops it.
    """

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.pieces: list[str] = []
        self.finish_reason: str | None = None
        self._counted = 0
        self._plain: Any = None  # a streamed layout whose text outputs were checked: its tokens are read from the bytes

    def _take(self, result: InferResult) -> str:
        outputs = result.outputs
        if type(outputs) is StreamOutputs and outputs.plan is self._plain:  # the usual token: the checks below were made
            piece = outputs.text(TEXT_OUT) or ""
            self.pieces.append(piece)
            reason = outputs.text("finish_reason")
            if reason:
                self.finish_reason = reason
            if piece:
                self._counted += 1
            return piece
        try:
            piece = self._checked(result)
        except EasnbError as exc:  # its text quotes the server's (a datatype, a count's text), which may quote the token
            raise scrub(exc, getattr(self.stream, "token", None)) from None
        if type(outputs) is StreamOutputs and "num_output_tokens" not in outputs and all(
                name not in outputs or outputs.text(name) is not None for name in (TEXT_OUT, "finish_reason")):
            self._plain = outputs.plan
        return piece

    def _checked(self, result: InferResult) -> str:
        outputs, datatypes = result.outputs, result.datatypes
        for name in (TEXT_OUT, "finish_reason"):
            datatype = datatypes.get(name, "BYTES")
            if datatype != "BYTES":  # a number's bytes read as UTF-8 would be printed as if the model said them
                raise TensorError(
                    f"The model sent {name} as {datatype}, not text (BYTES): it does not follow the text "
                    "generation conventions.",
                    hint="Read its responses with conn.stream(model, inputs) instead.")
        piece = _text(outputs, TEXT_OUT)
        self.pieces.append(piece)
        if "finish_reason" in outputs:
            self.finish_reason = _text(outputs, "finish_reason") or self.finish_reason
        counted = outputs.get("num_output_tokens")
        if counted is not None:
            total = int(counted.sum()) if counted.dtype.kind in "iu" else -1  # was: int() of a server's text or NaN
            if total < 0:
                raise TensorError(
                    f"The model sent num_output_tokens as {datatypes.get('num_output_tokens')} "
                    f"{reprlib.repr(counted.tolist())}, not a count of tokens: it does not follow the text generation "
                    "conventions.", hint="Read its responses with conn.stream(model, inputs) instead.")
            self._counted += total
        elif piece:
            self._counted += 1
        return piece

    def __iter__(self) -> Iterator[str]:
        for result in self.stream:
            yield self._take(result)

    def finish(self) -> Generation:
        """Wait for the end; returns itself."""
        for _ in self:
            pass
        return self

    def cancel(self) -> None:
        self.stream.cancel()

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def tokens(self) -> int:
        return self._counted

    @property
    def finished(self) -> bool:
        return self.stream is not None and bool(self.stream.finished)

    @property
    def time_to_first_token(self) -> float | None:
        """Seconds from sending to the first response that held text (``None`` while none has)."""
        arrivals = self._text_arrivals()  # was: any response's, a flags-only one too
        return arrivals[0] - self.stream.sent_at if arrivals else None

    @property
    def inter_token_latencies(self) -> list[float]:
        """Seconds between consecutive responses that held text (flags-only responses left out)."""
        arrivals = self._text_arrivals()  # was: every response's, one with no text among them
        return [b - a for a, b in zip(arrivals, arrivals[1:])]

    def _text_arrivals(self) -> list[float]:
        """When each response that held text arrived (only the final response may be flags-only: its arrival is last)."""
        if self.stream is None:
            return []
        return [t for t, piece in zip(self.stream.arrivals, self.pieces) if piece]

    @property
    def tokens_per_second(self) -> float | None:
        """Tokens over the time from sending to the last response."""
        if self.stream is None or not self.stream.arrivals or not self._counted:
            return None
        elapsed: float = self.stream.arrivals[-1] - self.stream.sent_at
        return self._counted / max(elapsed, 1e-9)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        ttft = self.time_to_first_token
        timing = f", first token after {ttft * 1000:.1f} ms" if ttft is not None else ""
        model = getattr(self.stream, "model", "(not started)")
        return f"<{type(self).__name__} {model}: {self.tokens} tokens, finish_reason={self.finish_reason!r}{timing}>"


def _text(outputs: Mapping[str, Any], name: str) -> str:
    """Output ``name`` as text ("" when absent): a streamed token's straight from the reply's bytes."""
    if type(outputs) is StreamOutputs:
        text = outputs.text(name)
        if text is not None:
            return text
    array = outputs.get(name)
    return "" if array is None else _text_of(array)


def _text_of(array: Any) -> str:
    values = array if type(array) is np.ndarray else np.asarray(array)
    if values.size == 1 and values.dtype.kind == "O":  # the usual token: one piece of text
        value = values.item()
        return value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")
    values = values.reshape(-1)
    return "".join(v if isinstance(v, str) else bytes(v).decode("utf-8", "replace") for v in values)


def _json_value(value: Any) -> Any:
    """A numpy scalar or array as the Python value ``json`` writes (was: "not JSON serializable")."""
    if isinstance(value, (np.generic, np.ndarray)) and value.dtype.kind in "biufU":
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def split_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(stream options, sampling settings)`` from ``generate``'s keyword arguments."""
    stream = {k: v for k, v in options.items() if k in STREAM_OPTIONS}
    return stream, {k: v for k, v in options.items() if k not in STREAM_OPTIONS}


def generate(conn: Any, model: str, prompt: str, max_tokens: int | None = None, temperature: float | None = None,
             **options: Any) -> Generation:
    """``Connection.generate``: the request sent at once; iterate the ``Generation`` for its text."""
    stream_options, sampling = split_options(options)
    meta = conn.cached_model_metadata(model, stream_options.get("version", ""))
    inputs = build_inputs(meta, prompt, {"max_tokens": max_tokens, "temperature": temperature, **sampling})
    return Generation(conn.stream(model, inputs, bytes_as_str=True, **stream_options))
