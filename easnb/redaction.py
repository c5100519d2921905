"""The token taken out of text a server or the network hands back: errors, details, the doctor's steps.

A token of ordinary length (``SHORT`` characters or more) goes wherever it occurs, whatever
surrounds it (``token=T``, ``T.``, ``?token=T&``, ``/keys/T/``, ``key-T``), and so do its
URL-encoded forms (any character as ``%XX``, either case) and its base64 forms (standard
and URL-safe alphabets, at each of the three alignments it can have inside a longer
base64 text, so ``base64("authorization: Bearer T")`` loses it too). Its ``Bearer`` form
contains it, so it goes with it. A very short token (a test's ``"t"``) is taken out only
as a whole word, so ``"failed to connect"`` survives a token ``"on"``.

>>> redact("GET /v1?token=0123456789abcdef&x=1 refused", "0123456789abcdef")
'GET /v1?token=***&x=1 refused'
>>> redact("failed to connect", "on")
'failed to connect'
"""

from __future__ import annotations

import base64
import re
from typing import Any

#: Tokens shorter than this are taken out only where they stand as a whole word.
SHORT = 8
MASK = "***"
_WORD = "A-Za-z0-9"


def redact(text: str, secret: Any) -> str:
    """``text`` with every form of ``secret`` (a ``Token`` or str) replaced by ``***``."""
    value = secret.reveal() if hasattr(secret, "reveal") else secret
    if not value or not text or not isinstance(value, str):
        return text
    if len(value) < SHORT:
        pattern = f"(?<![{_WORD}]){_spelled(value)}(?![{_WORD}])"
    else:
        pattern = "|".join([_spelled(value), *(re.escape(core) for core in base64_cores(value.encode()))])
    return re.sub(pattern, MASK, text)


def holds(data: str | bytes, secret: Any) -> bool:
    """Whether ``data`` (text, or bytes such as a serialized message) holds any form of ``secret``."""
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    return redact(text, secret) != text


def _spelled(value: str) -> str:
    """A pattern for ``value`` with any character possibly URL-encoded (``%2F`` or ``%2f``; ``+`` for a space)."""
    parts = []
    for char in value:
        encoded = "".join("%" + "".join(f"[{h.lower()}{h}]" if h.isalpha() else h for h in f"{b:02X}") for b in char.encode())
        alternatives = [re.escape(char), encoded] + (["\\+"] if char == " " else [])
        parts.append(f"(?:{'|'.join(alternatives)})")
    return "".join(parts)


def base64_cores(value: bytes) -> list[str]:
    """The base64 characters that depend on ``value`` alone, at each alignment, in both alphabets.

    Any base64 text of bytes containing ``value`` contains one of these (at most two
    characters at each end, shared with the neighbouring bytes, stay).
    """
    cores = []
    bits = 8 * len(value)
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + value + b"\0\0").decode()
        start, end = -(-8 * shift // 6), (8 * shift + bits) // 6
        core = encoded[start:end]
        cores += [core, core.translate(str.maketrans("+/", "-_"))]
    return list(dict.fromkeys(c for c in cores if c))


__all__ = ["MASK", "SHORT", "base64_cores", "holds", "redact"]
