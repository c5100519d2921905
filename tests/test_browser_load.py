"""The workbench's Load and Compare tabs in a real JupyterLab (headless Chromium): a sweep whose chart
fills in, a comparison of iris and iris_v2 led by its verdict, both in History; the token never saved;
a sweep against a server answering garbage says that nothing was measured, and History calls it failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from easnb.demo import DemoServer

from .conftest import TOKEN
from .test_browser import ARTIFACTS, field, shot, lab, lab_page, new_notebook, open_lab_notebook, run_all, save  # noqa: F401 - lab is a fixture
from .test_loadtest_garbage import Liar, liar  # noqa: F401 - liar is a fixture

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


def test_load_and_compare_tabs_in_jupyterlab(lab: tuple[str, Path], demo: DemoServer, liar: tuple[str, Liar]) -> None:
    from playwright.sync_api import expect

    url, work = lab
    notebook = work / "sizing.ipynb"
    new_notebook(notebook, [
        "import easnb, pandas as pd\nfrom easnb.demo.models import IRIS_FEATURES, load_iris\n"
        "df = pd.DataFrame(load_iris()[0], columns=list(IRIS_FEATURES))\nwidget = easnb.ConnectionWidget()\nwidget",
        "bench = easnb.inspect(widget)\nbench",
    ])
    with lab_page("load", 1600) as page:
        open_lab_notebook(page, url, notebook)
        bench = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea")
        run_all(page)
        expect(page.get_by_text("Not connected yet: press Connect")).to_be_visible(timeout=90_000)
        field(page, "Endpoint").fill(demo.endpoint)
        page.locator(".easnb-token-input").fill(TOKEN)
        page.locator(".easnb-connect").click()
        expect(page.get_by_role("tab", name="Load", exact=True)).to_be_visible(timeout=60_000)
        # Load: two levels, the chart and the table fill in
        page.get_by_role("tab", name="Load", exact=True).click()
        model = field(page, "Model")
        model.fill("iris")
        model.press("Enter")
        field(page, "Levels").fill("1,2")
        for label, value in (("Seconds", "0.5"), ("Warm-up s", "0.1")):
            box = field(page, label)
            box.fill(value)
            box.press("Tab")
        page.locator("button:visible", has_text="Start").click()
        report = page.locator(".easnb-load-report:visible")
        expect(report).to_be_visible(timeout=60_000)
        chart = page.locator("svg.easnb-load-chart:visible")
        expect(chart.locator("circle")).to_have_count(4)  # p50 and p99 at each of 2 levels
        expect(chart.locator("rect.easnb-split").first).to_be_attached()  # the demo's own split
        expect(report.get_by_text("server_compute_infer_ms")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "browser-load-chart.png"), full_page=True)
        shot(bench, "workbench-7-load")
        # Compare: iris against iris_v2 on the notebook's DataFrame
        page.get_by_role("tab", name="Compare", exact=True).click()
        model = field(page, "Model A")
        model.fill("iris")
        model.press("Enter")
        field(page, "Model B").fill("iris_v2")
        field(page, "Data", "select").select_option("DataFrame")
        page.get_by_placeholder("DataFrame variable, e.g. df").locator("visible=true").fill("df")
        page.locator("button.widget-button:visible", has_text="Compare").click()
        verdict = page.locator(".easnb-verdict:visible")
        expect(verdict).to_have_text("differs on 6 of 150 rows", timeout=60_000)
        expect(page.get_by_text("rows that differ")).to_be_visible()
        shot(bench, "workbench-8-compare")
        # nothing a newcomer reads is cut off: the button's label, the tables (which scroll instead)
        other = page.locator("button:visible", has_text="B on another endpoint")
        assert other.evaluate("b => b.scrollWidth <= b.clientWidth"), "the button's label is cut off"
        for table in page.locator(".easnb-compare table:visible").all():
            assert table.evaluate("t => getComputedStyle(t.parentElement).overflowX") == "auto"
        # History has both
        page.get_by_role("tab", name="History", exact=True).click()
        options = [" ".join(o.split()) for o in field(page, "Call", "select").locator("option").all_inner_texts()]
        assert any(" load iris (OK)" in o for o in options) and any(" compare iris (OK)" in o for o in options), options
        page.screenshot(path=str(ARTIFACTS / "browser-load.png"), full_page=True)
        saved = save(page, notebook)
        assert TOKEN not in saved
        # a server answering garbage: the Load tab says nothing was measured, with the reason, and draws no chart
        liar[1].mode = "garbage"
        field(page, "Endpoint").fill(liar[0])
        page.locator(".easnb-connect").click()
        expect(bench).to_contain_text("(#2)", timeout=60_000)  # the workbench built again for the new connection
        page.get_by_role("tab", name="Load", exact=True).click()
        model = field(page, "Model")
        model.fill("iris")
        model.press("Enter")
        for label, value in (("Levels", "1"), ("Seconds", "0.5"), ("Warm-up s", "0")):
            box = field(page, label)
            box.fill(value)
            box.press("Tab")
        page.locator("button:visible", has_text="Start").click()
        errors = page.locator(".easnb-load-errors:visible")
        expect(errors.first).to_contain_text("every request failed, so nothing was measured", timeout=60_000)
        expect(errors.first).to_contain_text("UNREADABLE_REPLY (replies easnb cannot read")
        expect(page.locator("svg.easnb-load-chart:visible")).to_have_count(0)
        assert errors.first.evaluate("e => e.getBoundingClientRect().right <= e.closest('.widget-tab').getBoundingClientRect().right")
        shot(bench, "workbench-7b-load-garbage")
        # History says that sweep failed, with its error counts, not "OK"
        page.get_by_role("tab", name="History", exact=True).click()
        calls = field(page, "Call", "select").locator("option")
        expect(calls.first).to_contain_text("load iris (failed: no request succeeded at concurrency 1 (UNREADABLE_REPLY ")
        expect(page.locator(".widget-tab td:visible", has_text="failed: no request succeeded").first).to_be_visible()
