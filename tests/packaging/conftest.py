from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from building import Built, build_distribution


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Built]:
    """``built(name)``: the sdist and wheel of ``packages/<name>``, built once per test session (per xdist worker)."""
    outdir: Path = tmp_path_factory.mktemp("dist")
    cache: dict[str, Built] = {}

    def get(name: str) -> Built:
        if name not in cache:
            cache[name] = build_distribution(name, outdir / name)
        return cache[name]

    return get
