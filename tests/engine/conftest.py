"""Engine behaviour tests: they use the ``harness`` fixture of tests/conftest.py (memory and SQLite)."""
