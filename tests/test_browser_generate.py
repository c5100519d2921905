"""The workbench's Generate tab in a real JupyterLab (headless Chromium): live text, Stop, latency, History, the Infer tab's offer."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from easnb.demo import DemoServer
from easnb.demo.models import Model
from easnb.demo.textgen import generate, textgen

from .conftest import python_with_tritonclient
from .test_browser import ARTIFACTS, field, lab, lab_page, new_notebook, open_lab_notebook, run_all, shot  # noqa: F401 - lab is a fixture

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


@pytest.fixture()
def slow_demo() -> Iterator[DemoServer]:
    """The demo's textgen at 120 ms a token, so a person (and this test) sees the text grow and can stop it."""
    base = textgen()

    def slow(x, types, parameters):  # type: ignore[no-untyped-def]
        yield from generate(x, types, {**parameters, "delay_ms": 120})

    model = Model(base.metadata, base.run, stream=slow, optional=base.optional)
    with DemoServer(token="", models={"textgen": model}) as server:
        yield server


def test_generate_tab_in_jupyterlab(lab: tuple[str, Path], slow_demo: DemoServer, tmp_path: Path) -> None:  # noqa: F811
    from playwright.sync_api import expect

    url, work = lab
    notebook = work / "generate.ipynb"
    new_notebook(notebook, [f"import easnb\nbench = easnb.inspect(easnb.connect({slow_demo.endpoint!r}))\nbench"])
    with lab_page("generate", 1400) as page:
        open_lab_notebook(page, url, notebook)
        bench = page.locator(".jp-Notebook .jp-Cell").nth(0).locator(".jp-OutputArea")
        run_all(page)
        expect(page.get_by_role("tab", name="Generate", exact=True)).to_be_visible(timeout=90_000)
        expect(page.locator(".easnb-built")).to_be_visible()
        page.get_by_role("tab", name="Generate", exact=True).click()
        prompt = field(page, "Prompt", "textarea")
        expect(prompt).to_be_visible()
        prompt.fill("one two three four five six seven eight nine ten eleven twelve <b>bold</b>")
        field(page, "max_tokens").fill("30")
        generate_button = page.locator("button.widget-button:visible", has_text="Generate")
        stop_button = page.locator("button.widget-button:visible", has_text="Stop")
        generate_button.click()
        text = page.locator(".easnb-generated:visible")
        # the text grows while the model is still generating: live, token by token
        expect(text).to_contain_text("You said:", timeout=60_000)
        expect(stop_button).to_be_enabled()
        partial = text.inner_text()
        expect(text).not_to_have_text(partial, timeout=10_000)
        stop_button.click()
        expect(page.locator(".easnb-generate-stats:visible")).to_contain_text("stopped", timeout=30_000)
        assert "twelve" not in text.inner_text()
        shot(bench, "generate-1-stopped")
        # again to the end: the server's text stays text, the latency figures and chart appear
        field(page, "max_tokens").fill("30")
        generate_button.click()
        expect(page.locator(".easnb-generate-stats:visible")).to_contain_text("finish reason stop", timeout=60_000)
        expect(text).to_contain_text("<b>bold</b>.")
        assert text.locator("b").count() == 0
        expect(page.locator(".easnb-ttft:visible")).to_have_text(re.compile(r"\d+\.\d ms"))
        expect(page.locator(".easnb-itl:visible")).to_contain_text("inter-token latency: median")
        assert page.locator("svg.easnb-itl-chart:visible rect").count() == 14  # 15 tokens, 14 gaps
        shot(bench, "generate-2-finished")
        # History: both generations, the last copied as tritonclient code that asks for the final response
        page.get_by_role("tab", name="History", exact=True).click()
        rows = page.locator("table:visible tr", has_text="textgen")
        expect(rows.filter(has_text="stopped")).to_have_count(1)  # the stopped one: not OK, not in the percentiles
        expect(rows.filter(has_text="OK")).to_have_count(1)
        field(page, "as", "select").select_option("tritonclient")
        page.locator("button:visible", has_text="Copy as code").click()
        code = page.locator("textarea:visible").last
        expect(code).to_have_value(re.compile(r"enable_empty_final_response=True"))
        run = subprocess.run([python_with_tritonclient(), "-c", code.input_value()], capture_output=True, text=True,
                             timeout=60, cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip().endswith("<b>bold</b>.")
        page.locator("button:visible", has_text="Replay").click()
        expect(page.locator(".easnb-text:visible")).to_contain_text("<b>bold</b>.", timeout=60_000)
        # Infer: the decoupled model says so and offers Generate
        page.get_by_role("tab", name="Infer", exact=True).click()
        model = field(page, "Model")
        model.fill("textgen")
        model.press("Enter")
        expect(page.locator(".easnb-decoupled:visible")).to_contain_text("UNIMPLEMENTED")
        shot(bench, "generate-3-infer-offer")
        page.locator("button:visible", has_text="Open in Generate").click()
        expect(page.locator(".easnb-generated:visible")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "browser-generate.png"), full_page=True)
