"""The one way easnb builds HTML: its own templates are trusted, every value put in them is escaped.

Every widget, inspector, repr and chart builds its HTML here, so a name, detail or
reply field that a server sent (``<img src=x onerror=...>``) shows as text, never as
markup. ``Markup`` is HTML easnb built; anything else is escaped when it meets
markup (in ``html()``, ``+``, ``join``), so escaping is by construction.

>>> html("<b>{name}</b> {ms:.1f} ms", name="<script>", ms=2.345)
Markup('<b>&lt;script&gt;</b> 2.3 ms')
>>> html("<div>{}</div>", html("<i>{}</i>", "a & b"))
Markup('<div><i>a &amp; b</i></div>')
"""

from __future__ import annotations

import html as _html
import string
from collections.abc import Iterable, Mapping
from typing import Any


class Markup(str):
    """HTML easnb built: passed through as is when put into more markup."""

    __slots__ = ()

    def __html__(self) -> Markup:
        return self

    def __add__(self, other: Any) -> Markup:
        return Markup(str.__add__(self, escape(other)))

    def __radd__(self, other: Any) -> Markup:
        return Markup(str.__add__(escape(other), self))

    def join(self, parts: Iterable[Any]) -> Markup:
        return Markup(str.join(self, (escape(p) for p in parts)))

    def format(self, *args: Any, **values: Any) -> Markup:
        return html(self, *args, **values)

    def __mod__(self, values: Any) -> Markup:
        if isinstance(values, tuple):
            escaped: Any = tuple(_operand(v) for v in values)
        elif isinstance(values, Mapping):
            escaped = {k: _operand(v) for k, v in values.items()}
        else:
            escaped = _operand(values)
        return Markup(str.__mod__(self, escaped))

    def __repr__(self) -> str:
        return f"Markup({str.__repr__(self)})"


def escape(value: Any) -> Markup:
    """``value`` as text that is safe anywhere in HTML, in an element or a quoted attribute.

    ``Markup`` (or anything with ``__html__``) passes through; everything else is turned into
    ``str`` and gets ``& < > " '`` escaped.
    """
    if hasattr(value, "__html__"):
        return Markup(value.__html__())
    return Markup(_html.escape(str(value), quote=True))


def _operand(value: Any) -> Any:
    """A ``%`` operand: numbers as they are (for ``%d``, ``%.1f``; they hold no markup), the rest escaped."""
    return value if isinstance(value, (int, float)) else escape(value)


class _Formatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if hasattr(value, "__html__") and not format_spec:
            return str(value.__html__())
        return escape(format(value, format_spec))


_FORMATTER = _Formatter()


def html(template: str, /, *args: Any, **values: Any) -> Markup:
    """``template`` (easnb's own, trusted) with ``{}`` fields filled with escaped values.

    Format specs work as in ``str.format`` (``{ms:.1f}``); ``Markup`` values go in as they are.
    """
    return Markup(_FORMATTER.vformat(template, args, values))


def join(parts: Iterable[Any], separator: str = "") -> Markup:
    """The parts joined, each escaped unless it is ``Markup``; ``separator`` is trusted markup."""
    return Markup(separator).join(parts)


def text(value: Any) -> Markup:
    """``value`` as preformatted text (``<pre>``), escaped."""
    return html("<pre class='easnb-text'>{}</pre>", value)


__all__ = ["Markup", "escape", "html", "join", "text"]
