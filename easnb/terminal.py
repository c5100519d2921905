"""Text for a terminal: what a server or a user sent, with control characters made visible.

A service name, an error's details or a reply field may hold escape sequences that
clear the screen, retitle the window or hide text (``\\x1b[2J``, ``\\x9b``, ``\\u202e``).
``visible`` shows them as Python escapes; ``visible_json`` keeps JSON valid with ``\\uXXXX``.

>>> visible("evil\\x1b[2Jname\\u202e")
'evil\\\\x1b[2Jname\\\\u202e'
"""

from __future__ import annotations

import re
import unicodedata

# control, format (bidi overrides, zero-width), line and paragraph separators, lone surrogates
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# every character that can be hidden: the controls, the soft hyphen, and (checked one by one) all from U+0600 on
_SUSPECT = re.compile("[\x00-\x1f\x7f-\x9f\xad\u0600-\U0010ffff]")
_SUSPECT_IN_JSON = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\xad\u0600-\U0010ffff]")  # json.dumps' own newlines stay


def _hidden(char: str) -> bool:
    return unicodedata.category(char) in _HIDDEN


def visible(text: str) -> str:
    """``text`` with every control or format character (newlines too) written as its escape."""
    if text.isascii() and text.isprintable():
        return text
    return _SUSPECT.sub(lambda m: m[0].encode("unicode_escape", "backslashreplace").decode("ascii") if _hidden(m[0]) else m[0], text)


def visible_text(text: str) -> str:
    """Running text (a model's generated text): as ``visible``, but newlines and tabs stay as they are."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(part if part in ("\n", "\t") else visible(part) for part in _KEPT.split(text))


_KEPT = re.compile("([\n\t])")


def visible_json(text: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) with the control and format characters JSON
    leaves raw (DEL, C1 controls, bidi overrides, separators) written as ``\\uXXXX``: still valid JSON."""
    def escape(match: re.Match[str]) -> str:
        char = match[0]
        if not _hidden(char):
            return char
        units = char.encode("utf-16-be", "surrogatepass")
        return "".join(f"\\u{int.from_bytes(units[i:i + 2], 'big'):04x}" for i in range(0, len(units), 2))

    return _SUSPECT_IN_JSON.sub(escape, text)
