"""Run the dashboard as a real server for the browser tests.

`DashboardServer` starts `streamlit run dashboard/app.py` with the venv's
python on a free loopback port, waits for `/_stcore/health` to answer "ok"
and stops the whole process group at the end. `launch_chromium` opens the
system's headless Chromium through Playwright (no `playwright install`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
CHROMIUM = os.environ.get("LIPNET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A camera without a person: Chromium's own test pattern, no permission prompt
    # (the explorer's camera input in tests/test_browser_inputs.py).
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]

# How often a test checks the page for what it waits for. Playwright's default
# is every animation frame: 60 layouts a second in each page, which costs the
# shared cores more than the app's own rendering once several pages are open.
POLL_MS = 50


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DashboardServer:
    """`streamlit run dashboard/app.py` in a subprocess, on a free loopback port."""

    def __init__(self, port: int | None = None, env: dict[str, str] | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = env
        self._log: Path | None = None
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> DashboardServer:
        env = {**os.environ, **(self._env or {})}
        env.setdefault("PYTHONUNBUFFERED", "1")
        cmd = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(APP),
            "--server.headless",
            "true",
            "--server.port",
            str(self.port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ]
        fd, log = tempfile.mkstemp(prefix="streamlit-", suffix=".log")
        self._log = Path(log)
        try:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as a whole
            )
        finally:
            os.close(fd)
        self._wait_healthy(timeout)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                log, code = self.log(), self.proc.returncode
                self.stop()
                raise RuntimeError(f"streamlit exited with code {code}:\n{log}")
            try:
                with urllib.request.urlopen(
                    f"{self.url}/_stcore/health", timeout=5
                ) as r:
                    if r.read().decode().strip() == "ok":
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.5)
        log = self.log()
        self.stop()
        raise TimeoutError(
            f"streamlit did not answer {self.url}/_stcore/health within "
            f"{timeout:.0f} s:\n{log}"
        )

    def log(self) -> str:
        """Everything the server printed so far."""
        if self._log is not None:
            with contextlib.suppress(OSError):
                return self._log.read_text(errors="replace")
        return ""

    def stop(self, timeout: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def launch_chromium(playwright):
    """The system's headless Chromium, through Playwright's sync API."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )


def launch_chromium_async(playwright):
    """The system's headless Chromium, through Playwright's async API (awaitable)."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )


# The visible track of a Streamlit slider, from its hidden <input type="range">
# (itself wider than it looks): the first ancestor of the input's thumb that is
# wider than the thumb. Its left and right ends are the slider's min and max
# (the thumb is centred on `left: value%`).
SLIDER_TRACK = """e => {
    let n = e.parentElement;
    while (n.parentElement && n.getBoundingClientRect().width < 100)
        n = n.parentElement;
    const r = n.getBoundingClientRect();
    return {x: r.x, y: r.y, width: r.width, height: r.height,
            min: Number(e.min), max: Number(e.max)};
}"""


def slider_point(track: dict, value: float) -> tuple[float, float]:
    """Where to click on a slider's track (from SLIDER_TRACK) to set `value`.

    One click commits one value, so the app reruns once; pressing arrow keys
    commits (and reruns) at every step.
    """
    span = max(track["max"] - track["min"], 1e-12)
    frac = min(max((value - track["min"]) / span, 0.0), 1.0)
    x = track["x"] + frac * track["width"]
    x = min(max(x, track["x"] + 0.5), track["x"] + track["width"] - 0.5)  # inside
    return x, track["y"] + track["height"] / 2
