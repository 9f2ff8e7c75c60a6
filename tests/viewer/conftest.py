"""Fixtures for the viewer tests: a headless Chromium that loads pages from disk, and small volumes.

The browser is Debian's ``chromium`` (``make test`` installs it with apt-get where it can). Where no
browser is found, the browser tests skip and say why; every other viewer test still runs.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-gpu-sandbox",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--mute-audio",
    "--disable-breakpad",
    # On a busy machine the software GPU can be starved for seconds: without these, Chromium's watchdogs
    # kill the GPU process / renderer and the page never finishes loading.
    "--disable-gpu-watchdog",
    "--disable-hang-monitor",
]
BUDGETS_MS = (20_000, 60_000, 180_000)
"""Virtual-time budgets tried in turn until the page reports a final status (no wall-clock limits)."""
SAFETY_TIMEOUT_S = 900
"""Only against a hung browser process; never an assertion on speed."""


def find_browser() -> str | None:
    """Path of a Chromium-family browser, or None."""
    env = os.environ.get("STYLEGAN3D_CHROMIUM")
    if env:
        return env
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """Headless Chromium driving pages from disk (``--dump-dom`` / ``--screenshot``)."""

    def __init__(self, exe: str, root: Path):
        self.exe = exe
        self.root = root

    def _run(self, extra: list[str], url: str, budget_ms: int, cwd: Path) -> subprocess.CompletedProcess:
        """One browser run in a fresh profile (a left-over profile lock would make Chromium hand the page
        to another instance); the whole process group is killed if it ever hangs."""
        profile = tempfile.mkdtemp(prefix="profile-", dir=self.root)
        cmd = [self.exe, *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *extra, url]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, start_new_session=True
        )
        try:
            out, err = proc.communicate(timeout=SAFETY_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        finally:
            shutil.rmtree(profile, ignore_errors=True)
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    def status(self, page: Path, fragment: str = "", size: str = "1200,900") -> dict:
        """Load ``page#fragment``; return the JSON the page writes into ``#status`` once loaded."""
        url = page.resolve().as_uri() + (f"#{fragment}" if fragment else "")
        last = ""
        for budget in BUDGETS_MS:
            proc = self._run([f"--window-size={size}", "--dump-dom"], url, budget, page.parent)
            m = re.search(r'<pre id="status" data-state="(\w+)">(.*?)</pre>', proc.stdout, re.S)
            last = proc.stdout[-500:] + proc.stderr[-2000:]
            if m and m.group(1) != "loading":
                doc = json.loads(html.unescape(m.group(2)))
                assert doc["state"] == "loaded", doc
                return doc
        raise AssertionError(f"the page never reported its volumes loaded: {last}")

    def screenshot(self, page: Path, out: Path, fragment: str = "", size: str = "1200,900") -> Path:
        """Load ``page#fragment`` and save a PNG screenshot to ``out``."""
        url = page.resolve().as_uri() + (f"#{fragment}" if fragment else "")
        proc = self._run([f"--window-size={size}", f"--screenshot={out}"], url, BUDGETS_MS[1], page.parent)
        assert out.is_file(), proc.stderr[-2000:]
        return out


@pytest.fixture(scope="session")
def browser(tmp_path_factory) -> Browser:
    exe = find_browser()
    if exe is None:
        pytest.skip(
            "no headless browser: install Debian's `chromium` package (make test does so with apt-get where it "
            "can), or set STYLEGAN3D_CHROMIUM to a Chromium binary"
        )
    return Browser(exe, tmp_path_factory.mktemp("chromium"))
