"""A real headless Chromium driven by Playwright for Python: open a page, run JavaScript in it, collect its
JavaScript errors, screenshot.

Chromium is Debian's (`apt-get install chromium`; .ci/run installs it), launched by its path: Playwright's own
browser download (`playwright install`) is never used. Playwright is pinned in envs/requirements-cpu.txt.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright

BROWSERS = ("chromium", "chromium-browser", "chromium-headless-shell")


def find_chromium() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


class Browser:
    """One headless Chromium with one page. Use as a context manager."""

    def __init__(self, executable: str, width: int = 1400, height: int = 1000, timeout: float = 60.0):
        self.errors: list[str] = []
        self._playwright = sync_playwright().start()
        try:
            # Playwright passes --headless, --no-sandbox (Chromium needs it as root) and --disable-dev-shm-usage itself
            self._browser = self._playwright.chromium.launch(
                executable_path=executable,
                headless=True,
                timeout=timeout * 1000,
            )
            self.page = self._browser.new_page(viewport={"width": width, "height": height})
        except BaseException:
            self._playwright.stop()
            raise
        self.page.set_default_timeout(timeout * 1000)
        # uncaught exceptions; console.error calls and Chromium's error log entries both arrive as console errors
        self.page.on("pageerror", lambda error: self.errors.append(error.stack or error.message))
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._browser.close()
        finally:
            self._playwright.stop()

    def open(self, url: str) -> None:
        """Navigate and wait until the page's load event."""
        self.page.goto(url, wait_until="load")

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (a promise is awaited); a thrown error is raised."""
        return self.page.evaluate(expression)

    def javascript_errors(self) -> list[str]:
        """Uncaught exceptions, console.error calls and error log entries of the page so far."""
        return list(self.errors)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=path)
        return path
