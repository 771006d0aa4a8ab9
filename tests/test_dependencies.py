"""On CI a test never skips for a missing tool (`tests.dependencies`)."""

import pytest

from tests import dependencies


def test_a_missing_tool_skips_elsewhere_with_how_to_install_it(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Chromium is missing: apt-get install"):
        dependencies.require(False, "Chromium", "apt-get install chromium")
    with pytest.raises(pytest.skip.Exception, match="no_such_module_here"):
        dependencies.require_module("no_such_module_here", "pip install it")


@pytest.mark.parametrize("value", ["true", "1", "TRUE"])
def test_on_ci_a_missing_tool_fails(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="CI=true, so this test must run"):
        dependencies.require(False, "Chromium", "apt-get install chromium")
    with pytest.raises(pytest.fail.Exception):
        dependencies.require_module("no_such_module_here", "pip install it")
    dependencies.require(True, "Chromium", "-")  # present: nothing happens
    assert dependencies.require_module("json", "-").dumps([]) == "[]"
