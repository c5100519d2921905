"""The widgets in a real JupyterLab, driven by Playwright in Debian's headless Chromium.

A person's path: open a notebook, run it, type an endpoint and a token, save (with
"save widget state" on), press Connect, see the status, run an inference from the
inspector, see the table, save again. Neither save may hold the token.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from easnb.demo import DemoServer

from .conftest import TOKEN, free_port, python_with_tritonclient
from .seedparts import seed_behind_gateway, stop  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"  # what users see, per widget state and tab: look before changing the UI
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


@pytest.fixture()
def lab(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """JupyterLab on 127.0.0.1 with its own config, settings and workspace folders."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    config, work = tmp_path / "config", tmp_path / "work"
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(json.dumps({"buildCheck": False, "buildAvailable": False}))
    settings = tmp_path / "settings" / "@jupyter-widgets" / "jupyterlab-manager"
    settings.mkdir(parents=True)
    (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"saveState": True}))
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    work.mkdir()
    port, lab_token = free_port(), "lab-token-for-test"
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "EASNB_TOKEN": "",
    }
    env.pop("EASNB_ENDPOINT", None)
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={lab_token}", "--allow-root", "--LabApp.expose_app_in_browser=True",
         f"--LabApp.user_settings_dir={tmp_path / 'settings'}", f"--LabApp.workspaces_dir={tmp_path / 'ws'}",
         f"--ServerApp.root_dir={work}"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={lab_token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text()[-3000:])
                time.sleep(0.3)
        yield f"{url}/lab/tree/%s?token={lab_token}", work
    finally:
        stop(proc, timeout=15)
        log.close()


KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
}"""


def run_cell(page, index: int) -> None:  # type: ignore[no-untyped-def]
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Escape")
    page.keyboard.press("Shift+Enter")


def save(page, path: Path) -> str:  # type: ignore[no-untyped-def]
    before = path.stat().st_mtime_ns
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while path.stat().st_mtime_ns == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert path.stat().st_mtime_ns != before, "the notebook was not saved"
    return path.read_text()


def test_connect_inspect_infer_in_jupyterlab(lab: tuple[str, Path], demo: DemoServer) -> None:
    from playwright.sync_api import expect

    url, work = lab
    notebook = work / "widgets.ipynb"
    new_notebook(notebook, [
        "import easnb\nw = easnb.ConnectionWidget()\nw",
        "from easnb.inspectors import InferInspector\nform = InferInspector(w.connection, 'iris')\nform",
    ])
    with lab_page("widgets", 1000) as page:
        open_lab_notebook(page, url, notebook)
        run_cell(page, 0)
        token_input = page.locator(".easnb-token-input")
        expect(token_input).to_be_visible(timeout=60_000)  # rendered, not "Loading widget..."
        endpoint_input = field(page, "Endpoint")
        endpoint_input.fill(demo.endpoint)
        token_input.fill(TOKEN)
        saved = save(page, notebook)  # a save before Connect, with the token typed
        assert "application/vnd.jupyter.widget-state+json" in saved and TOKEN not in saved
        page.locator(".easnb-connect").click()
        expect(page.get_by_text("easnb-demo")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("round trip")).to_be_visible()
        assert token_input.input_value() == ""
        run_cell(page, 1)
        features = field(page, "features", "textarea")
        expect(features).to_be_visible(timeout=60_000)
        features.fill("[6.7, 3.0, 5.2, 2.3]")
        page.locator("button.widget-button", has_text="Run").click()
        expect(page.locator("table.dataframe").get_by_text("virginica")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("latency")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "browser-widgets.png"), full_page=True)
        assert page.get_by_text("Loading widget").count() == 0
        saved = save(page, notebook)
        assert "application/vnd.jupyter.widget-state+json" in saved and "easnb-demo" in saved
        assert TOKEN not in saved
        checkpoints = work / ".ipynb_checkpoints"
        for file in checkpoints.glob("*") if checkpoints.exists() else []:
            assert TOKEN not in file.read_text()


@contextlib.contextmanager
def lab_page(name: str, height: int) -> Iterator[Any]:
    """A headless Chromium page; on failure a full-page screenshot ``browser-{name}-failure.png``."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": height})
        page.set_default_timeout(60_000)
        try:
            yield page
        except Exception:
            page.screenshot(path=str(ARTIFACTS / f"browser-{name}-failure.png"), full_page=True)
            raise
        finally:
            browser.close()


def field(page, label: str, kind: str = "input"):  # type: ignore[no-untyped-def]
    """The visible input (or textarea) of the ipywidgets control described by ``label``."""
    box = page.locator(".widget-inline-hbox:visible", has=page.locator("label.widget-label", has_text=label))
    return box.locator(kind).first


def open_lab_notebook(page, url: str, notebook: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(url % notebook.name)
    page.wait_for_function(KERNEL_IDLE, timeout=90_000)


def new_notebook(path: Path, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def run_all(page) -> None:  # type: ignore[no-untyped-def]
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def shot(locator, name: str) -> None:  # type: ignore[no-untyped-def]
    """A picture of what users see, kept in test-artifacts/screenshots/ (git ignores test-artifacts/)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    locator.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def test_workbench_in_jupyterlab(lab: tuple[str, Path], demo: DemoServer, tmp_path: Path) -> None:
    """The README's widget lines under Run All: a wrong token, Diagnose, Connect (with the Advanced
    fold), Connect again, every tab, Example then Run, the service form, the history copied as code,
    and the widget's connection closed; each widget state and each tab pictured."""
    from playwright.sync_api import expect

    url, work = lab
    notebook = work / "workbench.ipynb"
    new_notebook(notebook, [
        "import easnb\nwidget = easnb.ConnectionWidget()\nwidget",
        "bench = easnb.inspect(widget)\nbench",
        "print('settings', widget.connection.keepalive.time_s, widget.connection.headers)",
        "widget.connection.close()",
    ])
    with lab_page("workbench", 1400) as page:
        open_lab_notebook(page, url, notebook)
        widget = page.locator(".jp-Notebook .jp-Cell").nth(0).locator(".jp-OutputArea")
        bench = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea")
        run_all(page)
        expect(page.get_by_text("press Connect").first).to_be_visible(timeout=90_000)
        shot(widget, "widget-1-not-connected")
        # a wrong token: the server answered, so live stays green; Diagnose says which step failed
        field(page, "Endpoint").fill(demo.endpoint)
        page.locator(".easnb-token-input").fill("not-the-token")
        page.locator(".easnb-connect").click()
        expect(page.get_by_text("refused the token")).to_be_visible(timeout=60_000)
        shot(widget, "widget-2-wrong-token")
        page.locator("button:visible", has_text="Diagnose").click()
        expect(page.get_by_text("easnb doctor").first).to_be_visible()
        expect(page.locator(".easnb-mark", has_text="FAIL")).to_be_visible()
        expect(page.get_by_text("none: gRPC connects directly").first).to_be_visible()  # the proxy step
        shot(widget, "widget-3-diagnosed")
        page.locator(".easnb-token-input").fill(TOKEN)
        page.get_by_text("Advanced").first.click()
        keepalive = field(page, "Keepalive (s)")
        keepalive.fill("60")
        keepalive.press("Tab")
        field(page, "Headers", "textarea").fill("x-request-id: browser")
        page.locator(".easnb-connect").click()
        expect(page.get_by_role("tab", name="Infer")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("services: helloworld.GreeterService").first).to_be_visible()
        expect(page.locator(".easnb-built")).to_contain_text("(#1)")
        page.locator(".easnb-connect").click()  # Connect again: the token stays Python-side
        expect(page.locator(".easnb-built")).to_contain_text("(#2)")  # the workbench followed
        shot(widget, "widget-4-connected")
        # Server tab
        expect(page.locator(".jp-OutputArea").get_by_text("easnb-demo").first).to_be_visible()
        shot(bench, "workbench-1-server")
        # Model tab: the list comes from the demo's repository index
        page.get_by_role("tab", name="Model").click()
        model = field(page, "Model")
        assert "iris" in page.evaluate("(id) => [...document.getElementById(id).options].map(o => o.value)", model.get_attribute("list"))
        model.fill("iris")
        model.press("Enter")
        expect(page.get_by_text("[variable, 4]").first).to_be_visible()
        shot(bench, "workbench-2-model")
        # Infer tab: picking the model loads its inputs; Example fills them; Run
        page.get_by_role("tab", name="Infer").click()
        model = field(page, "Model")
        model.fill("iris")
        model.press("Enter")
        features = field(page, "features", "textarea")
        expect(features).to_be_visible()
        page.locator("button:visible", has_text="Example").click()
        expect(features).to_have_value("[[1.0, 1.0, 1.0, 1.0]]")
        page.locator("button.widget-button:visible", has_text="Run").click()
        expect(page.locator(".easnb-bars:visible").first).to_be_visible()
        features.fill("[[6.7, 3.0, 5.2, 2.3]]")
        page.locator("button.widget-button:visible", has_text="Run").click()
        expect(page.locator("table.dataframe:visible").get_by_text("virginica")).to_be_visible()
        expect(page.get_by_text("p50").first).to_be_visible()
        latency = page.locator(".easnb-call-latency:visible").inner_text()  # "latency 3.1 ms"
        shot(bench, "workbench-3-infer")
        # Service tab: the Greeter from the demo's reflection
        page.get_by_role("tab", name="Service").click()
        field(page, "name").fill("Browser")
        page.locator("button.widget-button:visible", has_text="Call").click()
        expect(page.get_by_text("Hello, Browser!")).to_be_visible()
        shot(bench, "workbench-4-service")
        # History tab: the newest call is selected and its code shown, with no click
        page.get_by_role("tab", name="History").click()
        code = page.locator("textarea:visible").last
        expect(code).to_have_value(re.compile(r"client\.SayHello\("))
        entry = field(page, "Call", "select")
        assert "SayHello" in entry.locator("option:checked").inner_text()
        iris = [o for o in entry.locator("option").all_inner_texts() if "infer\xa0iris" in o.replace(" ", "\xa0")]
        assert len(iris) == 2
        figure = latency.split()[1]  # the Infer tab's figure for the last iris call is History's too
        expect(page.locator("table.dataframe:visible tbody tr").nth(1).locator("td").last).to_have_text(figure)
        assert page.locator("table.dataframe:visible tbody tr").count() == 4  # the Model tab's call is there too
        for line in ("infer: 2 calls", "service: 1 call ·"):  # latency percentiles a kind, not one mixed distribution
            expect(page.locator(".easnb-latency:visible", has_text=line)).to_be_visible()
        entry.select_option(label=iris[0])
        expect(code).to_have_value(re.compile(r"conn\.infer\(['\"]iris['\"]"))
        shot(bench, "workbench-5-history")
        answers = []
        for flavour, marker in (("easnb", "easnb.connect("), ("tritonclient", "InferenceServerClient(")):
            field(page, "as", "select").select_option(flavour)
            expect(code).to_have_value(re.compile(re.escape(marker)))
            page.locator("button:visible", has_text="Copy as code").click()
            text = code.input_value()
            assert TOKEN not in text and ("tritonclient" in text) == (flavour == "tritonclient")
            python = python_with_tritonclient() if flavour == "tritonclient" else sys.executable
            run = subprocess.run([python, "-c", text], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                                 env={**os.environ, "EASNB_TOKEN": TOKEN})
            assert run.returncode == 0, run.stderr
            answers.append("virginica" in run.stdout)
        assert answers == [True, True]
        # the Advanced settings reached the connection
        run_cell(page, 2)
        expect(page.get_by_text("settings 60.0 {'x-request-id': 'browser'}")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "browser-workbench.png"), full_page=True)
        saved = save(page, notebook)
        assert TOKEN not in saved
        # the old quickstart clean-up: the widget greys out and says what to press, the workbench names Connect
        run_cell(page, 3)
        expect(widget.get_by_text("connection closed")).to_be_visible()
        expect(bench.get_by_text("connection closed")).to_be_visible()  # the header says it too
        shot(widget, "widget-5-closed")
        page.get_by_role("tab", name="Server").click()
        page.locator("button.widget-button:visible", has_text="Refresh").click()
        expect(page.get_by_text("Press Connect in the connection widget").first).to_be_visible()


def test_guides_server_behind_the_gateway_in_jupyterlab(lab: tuple[str, Path], seed_behind_gateway) -> None:  # type: ignore[no-untyped-def]
    """A new user with only an endpoint and a token for the guide's hello-world service."""
    from playwright.sync_api import expect

    endpoint, token, _ = seed_behind_gateway
    url, work = lab
    notebook = work / "hello.ipynb"
    new_notebook(notebook, ["import easnb\nwidget = easnb.ConnectionWidget()\nwidget", "easnb.inspect(widget)"])
    with lab_page("hello", 1200) as page:
        open_lab_notebook(page, url, notebook)
        run_all(page)
        expect(page.locator(".easnb-token-input")).to_be_visible(timeout=90_000)
        field(page, "Endpoint").fill(endpoint)
        page.locator(".easnb-token-input").fill(token)
        page.locator(".easnb-connect").click()
        expect(page.get_by_text("not a V2 server").first).to_be_visible()
        expect(page.get_by_text("(token accepted)").first).to_be_visible()
        assert page.get_by_text("server's side").count() == 0
        page.get_by_role("tab", name="Service").click()
        import easnb.protos

        field(page, ".proto").fill(str(easnb.protos.path("helloworld.proto")))
        field(page, "Service").fill("helloworld.GreeterService")
        page.locator("button:visible", has_text="Load").click()
        field(page, "name").fill("World")
        page.locator("button.widget-button:visible", has_text="Call").click()
        expect(page.get_by_text("Hello, World!")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "browser-hello.png"), full_page=True)


def test_quickstart_run_all_leaves_a_working_workbench(lab: tuple[str, Path]) -> None:
    """A newcomer's first Run All of tutorial 01, then the workbench it ends with: every tab still works."""
    from playwright.sync_api import expect

    url, work = lab
    notebook = work / "01-quickstart.ipynb"
    notebook.write_bytes((ROOT / "notebooks" / "01-quickstart.ipynb").read_bytes())
    with lab_page("quickstart", 1000) as page:
        open_lab_notebook(page, url, notebook)
        run_all(page)
        expect(page.get_by_text("When you are done:")).to_be_visible(timeout=120_000)
        widget = page.locator(".jp-Notebook .jp-Cell", has=page.locator(".easnb-token-row")).locator(".jp-OutputArea")
        expect(widget.get_by_text("round trip")).to_be_visible()  # still connected: green lights, not a stale picture
        bench = page.locator(".jp-Notebook .jp-Cell", has=page.locator(".easnb-built")).locator(".jp-OutputArea")
        bench.scroll_into_view_if_needed()
        bench.get_by_role("tab", name="Infer").click()
        model = field(page, "Model")
        model.fill("iris")
        model.press("Enter")
        expect(field(page, "features", "textarea")).to_be_visible()
        page.locator("button:visible", has_text="Example").click()
        page.locator("button.widget-button:visible", has_text="Run").click()
        expect(bench.locator("table.dataframe:visible")).to_be_visible()
        bench.get_by_role("tab", name="History").click()
        expect(page.locator("textarea:visible").last).to_have_value(re.compile(r"conn\.infer\("))
        shot(bench, "quickstart-workbench-after-run-all")
        assert page.get_by_text("connection is closed").count() == 0
        # the demo stopped, as the last line suggests: the widget and the workbench's header both say so
        last = page.locator(".jp-Notebook .jp-Cell").last
        last.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Escape")
        page.keyboard.press("b")
        page.keyboard.press("Enter")
        page.keyboard.type("server.stop()")
        page.keyboard.press("Shift+Enter")
        expect(widget.get_by_text("stopped answering")).to_be_visible(timeout=60_000)
        expect(bench.get_by_text("stopped answering")).to_be_visible(timeout=60_000)
        shot(widget, "widget-6-server-stopped")
        bench.get_by_role("tab", name="Server").click()
        bench.locator("button.widget-button:visible", has_text="Refresh").click()
        expect(bench.get_by_text("UnavailableError")).to_be_visible()
        shot(bench, "workbench-9-server-stopped")
