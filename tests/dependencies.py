"""Tests that need an optional tool: run on CI, never silently skipped there.

Elsewhere a test whose dependency is missing skips and says how to install it. With `CI=true`
(CI sets it; `.ci/run` is `make test`) it fails instead: on CI a skip would hide that the
check - the browser test's script-injection guard, the Ray executor's - never ran.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil

import pytest


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(available: bool, what: str, install: str) -> None:
    """Skip (elsewhere) or fail (on CI) unless `available`."""
    if available:
        return
    message = f"{what} is missing: {install}"
    if on_ci():
        pytest.fail(f"CI=true, so this test must run: {message}", pytrace=False)
    pytest.skip(message)


def require_module(name: str, install: str):
    """The imported module `name`, or a skip / CI failure saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        require(False, f"the Python module {name}", install)


@contextlib.contextmanager
def headless_chromium():
    """Debian's Chromium, headless, driven by Playwright (nothing is downloaded): the browser,
    or a skip / CI failure saying how to install what is missing."""
    executable = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                       if shutil.which(n)), None)
    require(executable is not None, "Chromium",
            "Debian: apt-get install chromium (`make test` installs it where it runs as root)")
    playwright = require_module("playwright.sync_api", "pip install -e '.[dev]'")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            yield browser
        finally:
            browser.close()
