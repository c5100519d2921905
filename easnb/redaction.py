"""The token taken out of text a server or the network hands back: errors, details, the doctor's steps.

A token of ordinary length (``SHORT`` characters or more) goes wherever it occurs, whatever
surrounds it (``token=T``, ``T.``, ``?token=T&``, ``/keys/T/``, ``key-T``), and so do its
URL-encoded forms (any character as ``%XX``, either case) and its base64 forms (standard
and URL-safe alphabets, at each of the three alignments it can have inside a longer
base64 text, so ``base64("authorization: Bearer T")`` loses it too). Its ``Bearer`` form
contains it, so it goes with it. So do its escaped and dumped forms: any character as JSON or
Python escapes it (``\\u00e9``, a surrogate pair, ``\\/``), as an HTML character reference
(``&amp;``, ``&#38;``) or as bytes in a repr (``\\xc3``), the
whole as hex (either case, bytes maybe apart by a space or colon), and any of these wrapped
across lines (a line break between any two characters). A very short token (a test's ``"t"``) is taken out only
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
        cores = base64_cores(value.encode())
        pattern = "|".join([_spelled(value, _BREAK), _hex(value.encode()), *(_BREAK.join(map(re.escape, c)) for c in cores)])
    return re.sub(pattern, MASK, text)


def holds(data: str | bytes, secret: Any) -> bool:
    """Whether ``data`` (text, or bytes such as a serialized message) holds any form of ``secret``."""
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    return redact(text, secret) != text


#: A line break a server or a tool may have wrapped the text at (a long token, MIME base64).
_BREAK = "(?:\\r?\\n)?"


_ENTITIES = {"&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "(?:apos|#39)"}


def _digits(number: int, width: int) -> str:
    """``number`` as hex digits of ``width``, either case."""
    return "".join(f"[{h.lower()}{h}]" if h.isalpha() else h for h in f"{number:0{width}X}")


def _spelled(value: str, between: str = "") -> str:
    """A pattern for ``value`` with any character possibly escaped: URL-encoded (``%2F``, ``+`` for a space),
    as bytes in a repr (``\\xc3``), JSON or Python (``\\u00e9``, a surrogate pair, ``\\U0001f600``, ``\\/``),
    an HTML character reference (``&amp;``, ``&#38;``, ``&#x26;``);
    ``between`` (a line break) may stand between any two characters."""
    parts = []
    for char in value:
        code = ord(char)
        alternatives = [re.escape(char), "".join(f"(?:%|\\\\x){_digits(b, 2)}" for b in char.encode("utf-8", "surrogatepass"))]
        if code < 0x10000:
            alternatives.append(f"\\\\u{_digits(code, 4)}")
        else:
            high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
            alternatives += [f"\\\\u{_digits(high, 4)}\\\\u{_digits(low, 4)}", f"\\\\U{_digits(code, 8)}"]
        alternatives += ["\\+"] if char == " " else ["\\\\/"] if char == "/" else []
        alternatives += [f"&#0*{code};", f"&#[xX]0*{_digits(code, 1)};"]
        alternatives += [f"&{_ENTITIES[char]};"] if char in _ENTITIES else []
        alternatives += ["\\\\" + re.escape(char)] if char in "\"'\\" else []  # a backslash before a quote or backslash
        parts.append(f"(?:{'|'.join(alternatives)})")
    return between.join(parts)


def _hex(value: bytes) -> str:
    """A pattern for ``value`` as hex digits (either case), bytes maybe apart by a space or a colon."""
    return "[ :]?".join(_digits(b, 2) for b in value)


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
