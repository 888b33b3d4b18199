"""Fixtures of the CLI tests (defined in cli_support, which test modules import their types from)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from cli_support import cli, seeded_memory, seeded_sqlite, shared_memory

__all__ = ["cli", "seeded_memory", "seeded_sqlite", "shared_memory"]
