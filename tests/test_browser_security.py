"""A model's `name` never becomes a path on the server (real server, real browser).

The model card page once built its export folder from the spec's `name`, so
an uploaded spec whose name was an absolute path, or climbed out with "..",
made the server write files there. Now `name` is checked when the spec is
read (1 to 64 characters from [A-Za-z0-9._-]) and exports go to a fresh
temporary folder. Through the sidebar's "Upload a model folder", like a
user: copies of a shipped model folder whose name is a path are refused with
a message, and nothing is written anywhere, not after the model card page
either; a valid copy is accepted and its plain-layer export downloads as a
zip, without a file appearing in the repository.

Generous timeouts: a 2-core CI machine may be busy with other work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest
from browser_helpers import POLL_MS, ROOT
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect
from test_browser import (  # test_browser's module-scoped server fixture, reused
    _SERVERS,
    FIRST_LOAD_MS,
    IDLE,
    STEP_MS,
    download,
    server,  # noqa: F401 (a fixture: pytest finds it here by name)
)

from lipnet import zoo

pytestmark = pytest.mark.browser

SOURCE = "mnist08-hkr"  # the shipped model the uploads copy (and the default)
ASSETS = ROOT / "assets"
CLIMBER = "../../assets/models/aaa-evil"


# --------------------------------------------------------------------------
# Fixtures: one server per module, a fresh browser session per test


@pytest.fixture
def page(server, browser):  # noqa: F811 (the imported fixture)
    context = browser.new_context(
        viewport={"width": 1400, "height": 1000}, accept_downloads=True
    )
    context.set_default_timeout(STEP_MS)
    page = context.new_page()
    page.goto(server.url, timeout=FIRST_LOAD_MS)
    idle(page, "the first run of the explorer", FIRST_LOAD_MS)
    yield page
    context.close()


# --------------------------------------------------------------------------
# Helpers


def idle(page: Page, what: str, timeout: float = STEP_MS) -> None:
    """Wait until the app is idle; on timeout fail with the page and the log."""
    try:
        page.wait_for_function(IDLE, timeout=timeout, polling=POLL_MS)
    except PlaywrightError as e:
        text = page.locator('[data-testid="stApp"]').inner_text(timeout=5000)
        log = _SERVERS[-1].log()[-3000:] if _SERVERS else ""
        raise AssertionError(
            f"timed out after {timeout / 1000:.0f} s waiting for {what} ({e}).\n"
            f"Page text:\n{text[:1500]}\nServer log:\n{log}"
        ) from None
    errors = page.locator('[data-testid="stException"]').all_inner_texts()
    assert not errors, f"the app raised: {errors}"


def model_folder(tmp_path: Path, name: str) -> Path:
    """A copy of the shipped model folder whose spec.json names it `name`."""
    source = zoo.list_models()[SOURCE]
    folder = tmp_path / "upload"
    folder.mkdir()
    spec = json.loads((source / "spec.json").read_text())
    spec["name"] = name
    (folder / "spec.json").write_text(json.dumps(spec, indent=2))
    shutil.copyfile(source / "weights.safetensors", folder / "weights.safetensors")
    return folder


def upload(page: Page, folder: Path) -> None:
    """Both files of a model folder through the sidebar's uploader."""
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Upload a model folder").click()
    files = [folder / "spec.json", folder / "weights.safetensors"]
    sidebar.locator('input[type="file"]').set_input_files(files)


def model_box(page: Page):
    sidebar = page.locator('[data-testid="stSidebar"]')
    return sidebar.get_by_role("combobox", name="Model")


def model_options(page: Page) -> list[str]:
    """The entries of the sidebar's model select, as the user reads them."""
    model_box(page).click()
    options = page.get_by_role("option")
    expect(options.first).to_be_visible()
    texts = [t.strip() for t in options.all_inner_texts()]
    page.keyboard.press("Escape")
    expect(options).to_have_count(0)
    return texts


def open_model_card(page: Page, name: str) -> None:
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.get_by_role("link", name="Model card").click()
    heading = page.get_by_role("heading", name=f"Model card: {name}")
    expect(heading).to_be_visible(timeout=STEP_MS)
    idle(page, "the model card page")
    # The page is drawn to its end: the downloads are built.
    button = page.get_by_role("button", name="Plain-layer export")
    expect(button).to_be_visible(timeout=STEP_MS)


def footprint() -> tuple[dict[str, tuple[int, int]], set[str]]:
    """What a stray write would change: every file and folder under assets/
    (size and modification time), git's view of assets/ (new, changed or
    deleted entries, ignored ones included) and the new entries at the
    repository's top level (untracked or ignored). Tests write only under
    pytest's temporary folders, outside the repository.
    """
    assets = {
        str(p.relative_to(ROOT)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(ASSETS.rglob("*"))
    }
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    seen = {
        line
        for line in status
        if line[3:].startswith("assets/")
        or (line[:2] in ("??", "!!") and "/" not in line[3:].rstrip("/"))
    }
    return assets, seen


def landing_places(name: str) -> list[Path]:
    """Where a file named after `name` would land if a path were built from it:
    as given, from the server's working folder (the repository), and from a
    temporary folder (where the old export went); with the old "-plain"."""
    bases = [ROOT, Path(tempfile.gettempdir()) / "tmpfolder"]
    found = [Path(os.path.normpath(base / name)) for base in bases]
    return [q for p in found for q in (p, p.with_name(p.name + "-plain"))]


# --------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("kind", ["absolute", "climbs out"])
def test_a_model_named_by_a_path_is_refused_and_writes_nothing(page, tmp_path, kind):
    target = tmp_path / "injected" / "evil"
    name = str(target) if kind == "absolute" else CLIMBER
    folder = model_folder(tmp_path, name)
    shipped = model_options(page)
    assert shipped and not any("evil" in t or "/" in t for t in shipped), shipped
    before = footprint()

    upload(page, folder)
    sidebar = page.locator('[data-testid="stSidebar"]')
    error = sidebar.locator('[data-testid="stAlertContentError"]')
    expect(error).to_contain_text("This model cannot be loaded:", timeout=STEP_MS)
    idle(page, "the refused upload's message")
    message = error.inner_text()
    assert "cannot be loaded" in message and "name" in message, message
    expect(model_box(page)).to_have_value(f"{SOURCE} · certified")

    # The model card page (and its exports) is the shipped model's; the name
    # from the refused spec is nowhere on the server's disk.
    open_model_card(page, SOURCE)
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_text(name)).to_have_count(0)
    assert model_options(page) == shipped
    for path in [target.parent, *landing_places(name)]:
        assert not path.exists(), f"the server wrote {path}"
    assert list(tmp_path.iterdir()) == [folder]
    for stray in ASSETS.glob("models/aaa-evil*"):
        pytest.fail(f"the server wrote {stray}")
    assert footprint() == before


def test_a_valid_upload_exports_a_zip_and_writes_nothing(page, tmp_path):
    folder = model_folder(tmp_path, "my-model")
    before = footprint()

    upload(page, folder)
    expect(model_box(page)).to_have_value("uploaded: my-model", timeout=STEP_MS)
    idle(page, "the explorer on the uploaded model")
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar.locator('[data-testid="stAlertContentError"]')).to_have_count(0)

    open_model_card(page, "my-model")
    received = tmp_path / "received"
    received.mkdir()
    archive = download(page, "Plain-layer export", received)
    assert archive.name == "my-model-plain.zip"
    assert zipfile.is_zipfile(archive)
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        assert z.testzip() is None
    # One model folder, no entry that could land outside it on unzip.
    assert {"spec.json", "weights.safetensors"} <= {Path(n).name for n in names}
    assert len({Path(n).parent for n in names}) == 1, names
    for n in names:
        assert not n.startswith("/") and ".." not in Path(n).parts, n
    assert footprint() == before
