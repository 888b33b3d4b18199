"""Build the distributions under packages/ the way a release is built, and read what the builds hold.

``build_distribution`` runs ``python -m build --no-isolation``: the sdist first, then the wheel from the unpacked
sdist, so a wheel that builds proves the sdist is complete.  No isolation means no network: the build backend
(hatchling) and ``build`` come from the dev venv (constraints.txt).
"""

from __future__ import annotations

import email.message
import email.parser
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import attrs

REPO = Path(__file__).resolve().parents[2]
PACKAGES = REPO / "packages"
DISTRIBUTIONS = ["stent-core", "stent-sqlite", "stent-postgres", "stent-redis", "stent-nats"]
BUILD_TIMEOUT = 180  # seconds, on a loaded two-core machine


@attrs.frozen
class Built:
    """One distribution's sdist and wheel."""

    name: str
    sdist: Path
    wheel: Path

    def sdist_names(self) -> list[str]:
        """The sdist's members, relative to its top folder (``stent_core-0.1.0/``)."""
        with tarfile.open(self.sdist) as archive:
            return [name.partition("/")[2] for name in archive.getnames() if "/" in name]

    def wheel_names(self) -> list[str]:
        with zipfile.ZipFile(self.wheel) as archive:
            return archive.namelist()

    def wheel_file(self, suffix: str) -> str:
        """The text of the wheel's one member whose name ends with ``suffix`` (``.dist-info/METADATA``)."""
        with zipfile.ZipFile(self.wheel) as archive:
            [name] = [n for n in archive.namelist() if n.endswith(suffix)]
            return archive.read(name).decode()

    def metadata(self) -> email.message.Message:
        return email.parser.Parser().parsestr(self.wheel_file(".dist-info/METADATA"))


def project_table(name: str) -> dict[str, object]:
    """The ``[project]`` table of ``packages/<name>/pyproject.toml``."""
    with open(PACKAGES / name / "pyproject.toml", "rb") as f:
        project: dict[str, object] = tomllib.load(f)["project"]
    return project


def source_version(name: str) -> str:
    """The version written in the distribution's pyproject.toml: the one source of truth."""
    return str(project_table(name)["version"])


def build_distribution(name: str, outdir: Path) -> Built:
    """Build ``packages/<name>`` into ``outdir`` (sdist, then the wheel from it); fails with the build's output."""
    outdir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(outdir), str(PACKAGES / name)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"building {name} failed:\n{result.stdout}\n{result.stderr}"
    stem = f"{name.replace('-', '_')}-{source_version(name)}"
    return Built(name, outdir / f"{stem}.tar.gz", outdir / f"{stem}-py3-none-any.whl")
