import pytest


def pytest_collection_modifyitems(items):
    """Everything under tests/components/ is a component test (run on TF and on JAX)."""
    for item in items:
        if "/tests/components/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.components)
