"""Tests that need an optional tool: run on CI, never silently skipped there.

Elsewhere a test whose dependency is missing skips and says how to install it. With `CI=true`
(CI sets it; `.ci/run` is `make test`) it fails instead: on CI a skip would hide that the
check - the browser test's script-injection guard, the Ray executor's - never ran.
"""

from __future__ import annotations

import importlib
import os

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
