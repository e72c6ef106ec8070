"""The operator tests use `stack` and `operator` from tests/integration/fixtures.py (via the parent conftest)."""
