"""A hostile reply replayed from History in a real JupyterLab runs no script: it shows as text.

The guide's Greeter (its unchanged server.py behind ``easnb gateway``) answers
``Hello, <name>!``; with ``name`` set to markup whose ``onerror`` would mark the page,
the reply is called from the Service tab, then replayed from the History tab.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .seedparts import seed_behind_gateway  # noqa: F401 - a fixture
from .test_browser import ARTIFACTS, field, lab, lab_page, new_notebook, open_lab_notebook, run_all  # noqa: F401 - lab is a fixture

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

HOSTILE = "<img src=x onerror=document.body.dataset.x=1>"
RAN = "() => document.body.dataset.x !== undefined || document.querySelectorAll('img[src=\"x\"]').length > 0"


def test_a_hostile_reply_replayed_from_history_runs_no_script(lab: tuple[str, Path], seed_behind_gateway) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    import easnb.protos

    endpoint, token, _ = seed_behind_gateway
    url, work = lab
    notebook = work / "hostile.ipynb"
    new_notebook(notebook, ["import easnb\nwidget = easnb.ConnectionWidget()\nwidget", "bench = easnb.inspect(widget)\nbench"])
    with lab_page("hostile", 1400) as page:
        open_lab_notebook(page, url, notebook)
        run_all(page)
        expect(page.locator(".easnb-token-input")).to_be_visible(timeout=90_000)
        field(page, "Endpoint").fill(endpoint)
        page.locator(".easnb-token-input").fill(token)
        page.locator(".easnb-connect").click()
        expect(page.get_by_text("not a V2 server").first).to_be_visible()
        page.get_by_role("tab", name="Service").click()
        field(page, ".proto").fill(str(easnb.protos.path("helloworld.proto")))
        field(page, "Service").fill("helloworld.GreeterService")
        page.locator("button:visible", has_text="Load").click()
        field(page, "name").fill(HOSTILE)
        page.locator("button.widget-button:visible", has_text="Call").click()
        reply = f"Hello, {HOSTILE}!"
        expect(page.get_by_text(reply).first).to_be_visible()  # shown as text in the Service tab
        page.get_by_role("tab", name="History").click()
        page.locator("button:visible", has_text="Replay").click()
        replayed = page.locator(".easnb-text:visible")
        expect(replayed).to_contain_text(reply)  # the replayed reply, as text
        page.wait_for_timeout(500)  # an image that failed to load would have fired onerror by now
        assert not page.evaluate(RAN), "markup from the reply ran in the page"
        page.screenshot(path=str(ARTIFACTS / "browser-hostile.png"), full_page=True)
