"""End-to-end fixtures: a real uvicorn server in a subprocess and Debian's Chromium via Playwright.

The server runs `python -m uvicorn app.main:app` on a free port (the real app, the real digit
model); Chromium is the system one (`CNNVIZ_CHROMIUM`, default /usr/bin/chromium), never a
downloaded browser. Every page collects console messages and page errors so tests can assert
that there are none.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.servers import free_port, start

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
CHROMIUM = os.environ.get("CNNVIZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def server() -> str:
    """Base URL of a real uvicorn serving app.main:app; stopped after the session."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    srv = start(args, port)
    yield srv.base
    srv.stop()


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make test` installs Debian's chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Messages(list):
    """Console messages and page errors seen by a page."""

    def problems(self) -> list[str]:
        return [m for m in self if m.startswith(("error", "warning", "pageerror"))]


@pytest.fixture
def page(browser, server):
    """A fresh 1280×720 page on `/`, with its console collected in `page.messages`."""
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    pg = context.new_page()
    msgs = Messages()
    pg.on("console", lambda m: msgs.append(f"{m.type}: {m.text}"))
    pg.on("pageerror", lambda e: msgs.append(f"pageerror: {e}"))
    pg.messages = msgs
    pg.base = server
    pg.goto(server + "/")
    pg.wait_for_selector("body[data-traces]", timeout=20000)
    yield pg
    context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
