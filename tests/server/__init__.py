"""End-to-end tests against a ClearML server (a package: its modules never shadow tests/conftest.py)."""
