"""The widgets in a real JupyterLab, driven by Playwright in Debian's headless Chromium.

A person's path: open a notebook, run it, type an endpoint and a token, save (with
"save widget state" on), press Connect, see the status, run an inference from the
inspector, see the table, save again. Neither save may hold the token.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from easnb.demo import DemoServer

from .conftest import TOKEN, free_port

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
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
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
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
    from playwright.sync_api import expect, sync_playwright

    url, work = lab
    notebook = work / "widgets.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import easnb\nw = easnb.ConnectionWidget()\nw"),
        nbformat.v4.new_code_cell("from easnb.inspectors import InferInspector\nform = InferInspector(w.connection, 'iris')\nform"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, notebook)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            page.goto(url % notebook.name)
            page.wait_for_function(KERNEL_IDLE, timeout=90_000)
            run_cell(page, 0)
            token_input = page.locator(".easnb-token-input")
            expect(token_input).to_be_visible(timeout=60_000)  # rendered, not "Loading widget..."
            endpoint_input = page.locator(".widget-text input").first
            endpoint_input.fill(demo.endpoint)
            token_input.fill(TOKEN)
            saved = save(page, notebook)  # a save before Connect, with the token typed
            assert "application/vnd.jupyter.widget-state+json" in saved and TOKEN not in saved
            page.locator(".easnb-connect").click()
            expect(page.get_by_text("easnb-demo")).to_be_visible(timeout=60_000)
            expect(page.get_by_text("round trip")).to_be_visible()
            assert token_input.input_value() == ""
            run_cell(page, 1)
            features = page.locator("textarea").first
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
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "browser-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
