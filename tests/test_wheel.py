"""The wheel is the whole app: `pip install` of the built wheel into a fresh venv outside the
checkout, `cnnviz serve` from another folder, and the page works in Chromium (draw, step,
learn). Nothing installs a top-level `app`.

The fresh venv gets the project's dependencies from the test's own environment through a
`.pth` path entry (no network, no editable finders: a path added by a .pth file is not a site
directory, so that environment's own .pth hooks do not run), and the wheel itself is installed
with --no-deps.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, start

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CNNVIZ_CHROMIUM", "/usr/bin/chromium")

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def run(*args: str | Path, cwd: Path) -> str:
    r = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    run(sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--no-build-isolation",
        "-w", dist, "-q", cwd=tmp)  # fmt: skip
    (wheel,) = dist.glob("cnnviz-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"cnnviz", "cnncore"}, tops
    for need in (
        "cnnviz/templates/index.html",
        "cnnviz/static/js/main.js",
        "cnnviz/static/css/app.css",
        "cnncore/models/digits.json",
        "cnncore/models/digits.npz",
    ):
        assert need in names, need
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp)
    py = venv / "bin" / "python"
    purelib = run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp)
    Path(purelib.strip(), "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel, cwd=tmp)
    return venv


def test_installs_cnnviz_and_no_app(installed: Path, tmp_path: Path):
    py = installed / "bin" / "python"
    out = run(py, "-c", "import cnnviz, cnncore; print(cnnviz.__file__); print(cnncore.__file__)",
              cwd=tmp_path)  # fmt: skip
    assert all(str(installed) in line for line in out.split())
    r = subprocess.run([py, "-c", "import app"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode != 0 and "No module named 'app'" in r.stderr
    out = run(py, "-c", "from cnnviz.settings import Settings; s = Settings(); "
              "print(s.static_dir); print(s.templates_dir)", cwd=tmp_path)  # fmt: skip
    assert all(line.startswith(str(installed)) for line in out.split())


BROWSER = """
import sys
from playwright.sync_api import sync_playwright
from tests.e2e.helpers import ONE, draw, go_to_step, wait_settled

base, chromium = sys.argv[1], sys.argv[2]
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.goto(base + "/")
    page.wait_for_selector("body[data-traces]", state="attached", timeout=30000)
    draw(page, ONE)
    wait_settled(page, timeout=60000)
    assert page.locator("#probs").get_attribute("data-prediction") is not None
    go_to_step(page, 0)
    assert page.locator("#detail").get_attribute("data-kind") == "conv"
    go_to_step(page, 5)
    page.locator("#learn-apply").click()
    page.wait_for_function(
        "() => document.querySelector('#learn-card').dataset.steps === '1'", timeout=60000
    )
    browser.close()
assert not errors, errors
print("browser ok")
"""


def test_serves_the_page_from_another_folder_draw_step_learn(installed: Path, tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNNVIZ_")}
    cli = installed / "bin" / "cnnviz"
    srv = start([str(cli), "serve", "--port", str(port), "--log-level", "warning"], port,
                env=env, cwd=tmp_path)  # fmt: skip
    try:
        page_html = httpx.get(srv.base + "/", timeout=10)
        assert page_html.status_code == 200 and 'rel="modulepreload"' in page_html.text
        # Chromium in its own process: Playwright's sync API cannot run twice in one (the e2e
        # tests' browser may be running in this one)
        r = subprocess.run(
            [sys.executable, "-c", BROWSER, srv.base, CHROMIUM],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0 and "browser ok" in r.stdout, r.stdout + r.stderr
    finally:
        # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught
        assert srv.stop() in (0, -15), srv.output()[-2000:]
        assert "Traceback" not in srv.output(), srv.output()[-2000:]
