"""Who may run beside whom when pytest-xdist spreads the suite over workers (``pytest -n 3``).

- ``@pytest.mark.alone``: the test measures time or load, which a busy neighbour would move; it runs
  with no other test running in any worker.
- ``@pytest.mark.serial("name")``: tests sharing ``name`` (a server's fixed work folder, say) never run
  at the same time; they may run beside other tests.

A readers-writer lock over files (``flock``) in the run's shared temporary folder: every test holds
``main`` shared, an ``alone`` test holds it exclusively, and passing the ``turnstile`` first keeps a
stream of shared holders from starving it. The lock spans a test's setup, call and teardown (module
fixtures included). In a run without workers nothing is locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # releases the lock


def _folder(config: pytest.Config) -> Path | None:
    """The folder every worker of this run shares (the parent of each worker's basetemp), or None without xdist."""
    if not hasattr(config, "workerinput") or not config.option.basetemp:
        return None
    return Path(config.option.basetemp).parent


@contextlib.contextmanager
def turn(item: pytest.Item) -> Iterator[None]:
    """Hold the locks ``item``'s marks ask for while it runs."""
    folder = _folder(item.config)
    if folder is None:
        yield
        return
    with contextlib.ExitStack() as held:
        if item.get_closest_marker("alone"):
            held.enter_context(_flock(folder / "easnb-turnstile.lock", fcntl.LOCK_EX))
            held.enter_context(_flock(folder / "easnb-main.lock", fcntl.LOCK_EX))
        else:
            with _flock(folder / "easnb-turnstile.lock", fcntl.LOCK_EX):
                pass
            held.enter_context(_flock(folder / "easnb-main.lock", fcntl.LOCK_SH))
        for name in sorted({m.args[0] for m in item.iter_markers("serial")}):
            held.enter_context(_flock(folder / f"easnb-serial-{name}.lock", fcntl.LOCK_EX))
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    with turn(item):
        return (yield)
