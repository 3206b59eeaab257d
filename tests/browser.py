"""Headless Chromium for page tests: Debian's /usr/bin/chromium driven by Playwright, never a downloaded browser.

Screenshots go to the test's folder; with QRSVC_SAVE_SCREENSHOTS=1 they are also copied to
docs/screenshots/ (that is how the committed ones are made).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"  # installed by scripts/system-deps.sh --test
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@contextlib.contextmanager
def chromium(args: Sequence[str] = ()) -> Iterator[Any]:
    """A launched browser; skips (reported) when Playwright or Chromium is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium: {CHROMIUM} is missing (sh scripts/system-deps.sh --test)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", *args],
        )
        try:
            yield browser
        finally:
            browser.close()


def keep_screenshot(path: Path) -> None:
    """Copy a screenshot into docs/screenshots/ when asked to (QRSVC_SAVE_SCREENSHOTS=1)."""
    if os.environ.get("QRSVC_SAVE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / path.name)
