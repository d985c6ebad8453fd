"""The test suite's two runs: everything (CI) and a quick local run without browsers.

Issue 20: the suite took 35 minutes on a busy 2-core machine against the
README's "4–6 minutes". Every module that drives a real browser carries the
`browser` marker, so `-m "not browser"` skips exactly those, and the README
gives both commands: the full one CI runs (`.ci/run` reads it from between its
markers) and the quick one.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
BROWSER_USE = re.compile(r"playwright|from browser_helpers|from test_browser")
MARKED = "pytestmark = pytest.mark.browser"


def test_every_browser_module_is_marked():
    unmarked = [
        p.name
        for p in sorted(TESTS.glob("test_*.py"))
        if BROWSER_USE.search(p.read_text()) and MARKED not in p.read_text()
    ]
    assert unmarked == []
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    markers = config["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("browser:") for m in markers)


def test_the_readme_gives_the_full_and_the_quick_command():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- test-command -->(.*?)<!-- /test-command -->", readme, re.S)
    assert block and not re.search(r"pytest\b[^\n]*\s-m\s", block.group(1)), (
        "CI runs every test"
    )
    quick = re.search(r"^.*python -m pytest -m \"not browser\".*$", readme, re.M)
    assert quick, "the quick local command"
    tests = readme[readme.index("## Tests") :]
    assert re.search(r"on two cores shared with other work", tests)
