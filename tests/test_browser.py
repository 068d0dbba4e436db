"""What a student sees: JupyterLab in a real (headless) Chromium.

Starts JupyterLab on 127.0.0.1 with a token of its own, opens a solved copy of a
release notebook, runs every cell from the Run menu and looks for a matplotlib
figure and a visible-check message; then opens a companion, moves its slider with
the keyboard and checks that the figure changed. Screenshots go to
``test-artifacts/browser/``.

Needs Debian's ``chromium`` (``/usr/bin/chromium``) and the Python package
``playwright`` (never ``playwright install``: the browser is Debian's). Without
them the test is skipped, or fails under CI (``CI`` set), where they must be there.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from autograder import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
ASSIGNMENT = "04_deep_network_step_by_step"
COMPANION = "10_activations.ipynb"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
PASS_TEXT = "All visible checks passed"
BUDGET_SECONDS = 180
# As the machine notes prescribe for Chromium here: no sandbox as root, and no
# background traffic towards hosts this closed network cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CODE_PROMPTS_DONE = """() => {
    const prompts = [...document.querySelectorAll(
        '.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')];
    return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""

pytestmark = pytest.mark.slow


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(
            f"{reason}. CI must install it: `apt-get install -y chromium` and "
            "`pip install playwright` (the Python package only; never run "
            "`playwright install`)"
        )
    pytest.skip(reason)


@pytest.fixture(scope="module")
def sync_playwright():
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} not found (Debian package `chromium`)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the Python package `playwright` is not installed")
    return sync_playwright


# ------------------------------------------------------------------ the notebooks

_MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")
_HIDDEN = re.compile(
    r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[ \t]*\n?",
    re.DOTALL | re.MULTILINE,
)


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _is_solution(cell) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("solution"))


def _solved(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if not _MARKER.match(line))


def solved_release_copy(assignment: str, dest: Path) -> Path:
    """Write the student's copy of ``assignment`` with every solution cell filled in.

    Starts from the committed ``release/`` notebook (stubs, locked cells, no hidden
    tests) and puts the reference solution of each solution cell in place. When
    ``release/`` does not hold the assignment yet, the source notebook with its
    hidden tests removed is the same thing.

    Returns:
        The path of the notebook in ``dest``.
    """
    source_dir = REPO_ROOT / "source" / assignment
    release_dir = REPO_ROOT / "release" / assignment
    source = nbformat.read(str(source_dir / f"{assignment}.ipynb"), as_version=4)
    solutions = {
        _grade_id(c): _solved(c.source) for c in source.cells if _is_solution(c)
    }
    base_dir = release_dir if (release_dir / f"{assignment}.ipynb").is_file() else None
    if base_dir is None:
        base_dir, nb = source_dir, source
        for cell in nb.cells:
            cell.source = _HIDDEN.sub("", cell.source)
    else:
        nb = nbformat.read(str(release_dir / f"{assignment}.ipynb"), as_version=4)
    for cell in nb.cells:
        if _is_solution(cell):
            cell.source = solutions[_grade_id(cell)]
    leftovers = [
        c.source
        for c in nb.cells
        if c.cell_type == "code" and "raise NotImplementedError" in c.source
    ]
    assert not leftovers, f"unsolved cells remain: {leftovers}"
    shutil.copytree(
        base_dir,
        dest,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("*.ipynb", "__pycache__", ".ipynb_checkpoints"),
    )
    path = dest / f"{assignment}.ipynb"
    nbformat.write(nb, str(path))
    return path


# --------------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _api(base: str, token: str, path: str, method: str = "GET"):
    request = urllib.request.Request(
        f"{base}/api/{path}",
        method=method,
        headers={"Authorization": f"token {token}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read()
    return json.loads(body) if body else None


def _stop(process: subprocess.Popen, base: str, token: str) -> None:
    """Shut the kernels down, then the server's whole process group."""
    try:
        for kernel in _api(base, token, "kernels"):
            _api(base, token, f"kernels/{kernel['id']}", method="DELETE")
    except (OSError, ValueError):
        pass  # the server is already gone; its kernels follow their parent
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def started():
    return time.monotonic()


@pytest.fixture(scope="module")
def lab(tmp_path_factory, sync_playwright, started):
    """A JupyterLab server on a scratch folder holding the two notebooks."""
    scratch = tmp_path_factory.mktemp("lab")
    root = scratch / "root"
    root.mkdir()
    notebook = solved_release_copy(ASSIGNMENT, root / ASSIGNMENT)
    shutil.copy(REPO_ROOT / "notebooks" / COMPANION, root / COMPANION)

    # Answer JupyterLab's "get notified about Jupyter news?" toast in advance: no.
    settings = scratch / "config" / "lab" / "user-settings" / "@jupyterlab"
    notification = settings / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )

    port, token = _free_port(), secrets.token_hex(16)
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ)
    # Draw with the inline backend, as for a student (CI sets MPLBACKEND=Agg).
    env.pop("MPLBACKEND", None)
    env.update(
        PATH=bindir + os.pathsep + env.get("PATH", ""),
        # This environment's kernelspec wins over any user-level "python3".
        JUPYTER_PREFER_ENV_PATH="1",
        # Scratch settings and workspaces, so no user configuration leaks in; the
        # kernelspec and lab extensions are still found under sys.prefix.
        JUPYTER_CONFIG_DIR=str(scratch / "config"),
        JUPYTER_DATA_DIR=str(scratch / "data"),
        JUPYTER_RUNTIME_DIR=str(scratch / "runtime"),
    )
    log_path = scratch / "server.log"
    with open(log_path, "wb") as log:
        yield from _serve(root, port, token, env, log, log_path, notebook)


def _serve(root, port, token, env, log, log_path, notebook):
    """Run the server until the module's tests are done; always stop it."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.port_retries=0",
            # No announcement or update checks against the internet.
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            # CI and the development machines run as root.
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        # nbgrader's server extension takes its course folder from here.
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                log.flush()
                pytest.fail(
                    "JupyterLab exited early:\n"
                    + log_path.read_text(errors="replace")[-3000:]
                )
            try:
                _api(base, token, "status")
                break
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not answer within 60 s")
                time.sleep(0.5)
        yield {
            "base": base,
            "token": token,
            "notebook": notebook.relative_to(root).as_posix(),
            "companion": COMPANION,
        }
    finally:
        _stop(process, base, token)


@pytest.fixture(scope="module")
def page(lab, sync_playwright):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.set_default_timeout(60_000)
            yield context.new_page()
        finally:
            browser.close()


# ---------------------------------------------------------------------- the tests


KERNEL_READY = """() => {
    const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
    const name = panel && panel.querySelector('.jp-KernelName');
    const state = panel && panel.querySelector('.jp-Notebook-ExecutionIndicator');
    return Boolean(name && state) && /^Python 3/.test(name.textContent.trim())
        && state.dataset.status === 'idle';
}"""


def _open(page, lab, notebook: str) -> None:
    # A workspace of its own per notebook, so that JupyterLab does not restore
    # (and compete with) the tabs of the previous test.
    workspace = Path(notebook).stem
    page.goto(
        f"{lab['base']}/lab/workspaces/{workspace}/tree/{notebook}?token={lab['token']}"
    )
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").wait_for()
    # Run All before the kernel is connected would ask "Select Kernel" instead.
    page.wait_for_function(KERNEL_READY)


def _run_all_cells(page, name: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$")).click()
    try:
        page.wait_for_function(CODE_PROMPTS_DONE, timeout=120_000)
        page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').wait_for()
    except Exception:
        page.screenshot(path=str(ARTIFACTS / f"{name}-run-all-failed.png"))
        raise


def _errors(page) -> list[str]:
    tracebacks = page.locator('.jp-OutputArea-output[data-mime-type*="stderr"]')
    return [tracebacks.nth(i).inner_text() for i in range(tracebacks.count())]


def test_a_solved_assignment_runs_and_shows_figures_and_checks(page, lab):
    _open(page, lab, lab["notebook"])
    _run_all_cells(page, "assignment")
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")

    figure = notebook.locator(".jp-RenderedImage img").first
    figure.scroll_into_view_if_needed()
    assert figure.get_attribute("src").startswith("data:image/png")
    box = figure.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 50, box
    page.screenshot(path=str(ARTIFACTS / "assignment-figure.png"))

    passed = notebook.locator(".jp-OutputArea-output", has_text=PASS_TEXT)
    assert passed.count() >= 1
    passed.first.scroll_into_view_if_needed()
    assert passed.first.is_visible()
    page.screenshot(path=str(ARTIFACTS / "assignment-visible-check.png"))
    assert _errors(page) == []


def test_a_companion_slider_redraws_the_figure(page, lab, started):
    _open(page, lab, lab["companion"])
    _run_all_cells(page, "companion")
    widget = page.locator(".jupyter-widgets.widget-vbox").first
    handle = widget.locator(".widget-slider .noUi-handle").first
    handle.wait_for()
    figure = widget.locator(".widget-output img").first
    figure.wait_for()
    widget.scroll_into_view_if_needed()
    before = figure.get_attribute("src")
    readout = widget.locator(".widget-slider .widget-readout").first
    start_value = readout.inner_text()
    page.screenshot(path=str(ARTIFACTS / "companion-before.png"))

    # One step of the slider (0.25), as a student would nudge it.
    handle.focus()
    page.keyboard.press("ArrowRight")
    # Redrawing may replace the <img> element, so look it up afresh each time.
    page.wait_for_function(
        """old => {
            const img = document.querySelector(
                '.jupyter-widgets.widget-vbox .widget-output img');
            return img !== null && img.getAttribute('src') !== old;
        }""",
        arg=before,
        timeout=30_000,
    )
    page.wait_for_function(KERNEL_READY)
    assert readout.inner_text() != start_value
    final = widget.locator(".widget-output img").first
    assert final.get_attribute("src").startswith("data:image/png")
    assert final.get_attribute("src") != before
    page.screenshot(path=str(ARTIFACTS / "companion-after.png"))
    assert _errors(page) == []

    elapsed = time.monotonic() - started
    assert elapsed < BUDGET_SECONDS, f"the browser test took {elapsed:.0f} s"
