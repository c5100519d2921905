"""A server whose reflection answer crashed the kernel, inspected in a real JupyterLab: an error, a live kernel.

``a.proto`` imports ``b.proto``, which imports ``a.proto``: protobuf's C implementation
segfaulted on it, and ``easnb.inspect(conn)`` loads the first service by itself, so the
kernel died with everything the user had in it. Now the Service tab says ReflectionError
and the next cell runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .hostile_reflection import HostileReflection, cyclic
from .test_browser import ARTIFACTS, lab, lab_page, new_notebook, open_lab_notebook, run_all  # noqa: F401 - lab is a fixture

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
pytest.importorskip("grpc_reflection", reason="the proto extra (grpcio-reflection) is not installed")


def test_a_cyclic_reflection_answer_is_an_error_in_the_workbench_not_a_dead_kernel(lab: tuple[str, Path]) -> None:
    from playwright.sync_api import expect

    url, work = lab
    notebook = work / "cyclic.ipynb"
    with HostileReflection(cyclic()) as server:
        new_notebook(notebook, [
            f"import easnb\nbench = easnb.inspect(easnb.connect({server.endpoint!r}))\nbench",
            "print('kernel alive', 6 * 7)",
        ])
        with lab_page("reflection", 1000) as page:
            open_lab_notebook(page, url, notebook)
            run_all(page)
            expect(page.get_by_text("kernel alive 42")).to_be_visible(timeout=90_000)
            page.get_by_role("tab", name="Service").click()
            expect(page.get_by_text("ReflectionError").first).to_be_visible()
            expect(page.get_by_text("a.proto -> b.proto -> a.proto").first).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "browser-reflection.png"), full_page=True)
