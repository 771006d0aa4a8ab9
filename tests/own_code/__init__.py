"""Components the engine has never seen, for tests/test_own_components.py."""
