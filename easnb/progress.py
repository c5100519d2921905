"""A progress line for waiting on something (a deploy, a service getting ready).

In a notebook it is tqdm's bar, full and green when the wait ends well, red when it does not; in a
terminal, tqdm's line rewritten in place. Without either (CI logs, ``easnb wait | cat``) it writes a
whole line, ending in a newline, each time the state changes (and every 30 s while it does not),
so lines never run together.

>>> with Waiting("deploying grpc_test", timeout=900) as line:   # doctest: +SKIP
...     line.update("Creating 0/1")
...     line.done()
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from .terminal import visible

QUIET_S = 30.0  # in line mode, say the state again after this long without a change


class Waiting:
    """``update(state)`` as the wait goes on, ``done()`` when it succeeded; ``close()`` (or the
    ``with`` block's end) finishes it, as a failure unless ``done()`` was called."""

    def __init__(self, desc: str, timeout: float, file: TextIO | None = None, bar: Any = None) -> None:
        self.desc, self.timeout = visible(desc), timeout  # names and states may be a server's text
        self.file = file if file is not None else sys.stderr
        self.state = ""
        self.ok = False
        self._started = self._said = time.monotonic()
        self._closed = False
        self._bar = bar(**self._bar_options()) if bar is not None else self._auto_bar()

    def _bar_options(self) -> dict[str, Any]:
        return {"total": self.timeout, "desc": self.desc, "unit": "s", "bar_format": "{desc}: {elapsed}{postfix}"}

    def _auto_bar(self) -> Any:
        from tqdm.auto import tqdm  # first: it imports autonotebook without its warning

        from tqdm import autonotebook, std

        in_notebook = autonotebook.tqdm is not std.tqdm  # tqdm.auto chose its notebook bar
        if in_notebook or _is_terminal(self.file):
            return tqdm(file=None if in_notebook else self.file, **self._bar_options())
        return None  # plain lines

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def update(self, state: str) -> None:
        """The state now, e.g. ``"Creating 0/1"`` (control characters shown as escapes: it may hold a server's text)."""
        state = visible(state)
        changed, self.state = state != self.state, state
        if self._bar is not None:
            self._bar.set_postfix_str(state, refresh=False)
            self._bar.n = round(min(self.elapsed, self.timeout * 0.99), 1)  # full only when done()
            self._bar.refresh()
        elif changed or time.monotonic() - self._said >= QUIET_S:
            self._line(state)

    def done(self) -> None:
        """The wait ended well: the bar fills and turns green."""
        self.ok = True
        if self._bar is not None:
            self._bar.n = self._bar.total
            self._bar.refresh()

    def close(self) -> None:
        """End the line: a full green bar after ``done()``, else a red one (a notebook) or "(stopped)"."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        else:
            self._line(f"{self.state} (done)" if self.ok else f"{self.state} (stopped)".strip())

    def _line(self, state: str) -> None:
        from tqdm import tqdm

        self._said = time.monotonic()
        print(f"{self.desc}: {tqdm.format_interval(self.elapsed)} {state}".rstrip(), file=self.file, flush=True)

    def __enter__(self) -> Waiting:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _is_terminal(file: Any) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):
        return False


def bar(**options: Any) -> Any:
    """tqdm's bar (``tqdm.auto``) for counting work; without a terminal or a notebook its refreshes are
    whole lines, at most one every ``QUIET_S`` seconds, instead of carriage returns that run together."""
    from tqdm.auto import tqdm  # first: it imports autonotebook without its warning

    from tqdm import autonotebook, std

    file = options.pop("file", None) or sys.stderr
    if autonotebook.tqdm is not std.tqdm or _is_terminal(file):
        return tqdm(file=file, **options) if file is not sys.stderr else tqdm(**options)
    return tqdm(file=_Lines(file), mininterval=QUIET_S, maxinterval=QUIET_S, dynamic_ncols=False, ncols=100, **options)


class _Lines:
    """A file for tqdm with no terminal behind it: each refresh becomes one line."""

    def __init__(self, file: TextIO) -> None:
        self.file = file

    def write(self, text: str) -> None:
        text = text.replace("\r", "").rstrip()
        if text:
            self.file.write(text + "\n")

    def flush(self) -> None:
        self.file.flush()
