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


# The files that take longest (seconds on a 2-core machine, measured with --durations), longest first.
# Under ``--dist loadfile --no-loadscope-reorder`` a worker takes files in collection order: these go
# first, so no long file starts last while the other workers sit idle. Peers that share a lock
# (serial("triton")) are spread apart.
HEAVY = (
    "test_browser.py", "test_notebooks.py", "test_binder.py", "test_bench.py", "test_browser_generate.py",
    "test_browser_load.py", "test_eas_standin.py", "test_readme.py", "test_browser_hostile.py",
    "test_messages.py", "test_bench_stream.py", "test_lab.py", "test_browser_reflection.py",
    "test_workbench.py", "test_interop_pytriton.py", "test_gateway.py", "test_connection.py",
)


def heavy_first(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker, put the HEAVY files first (in that order); the rest keep their order."""
    if not hasattr(config, "workerinput"):
        return
    rank = {name: i for i, name in enumerate(HEAVY)}
    items.sort(key=lambda item: rank.get(item.path.name, len(HEAVY)))
