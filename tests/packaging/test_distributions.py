"""Each distribution under packages/ builds an sdist and a wheel that hold what a release needs, and nothing more.

The builds are ``python -m build --no-isolation``, as a release would run it (sdist, then the wheel from it).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from building import DISTRIBUTIONS, PACKAGES, Built, project_table, source_version
from packaging.requirements import Requirement

# Besides its source files, an sdist holds exactly these (hatchling adds the .gitignore it used).
SDIST_FILES = {"PKG-INFO", "pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE", ".gitignore"}
SUPPORTED_PYTHONS = ["3.11", "3.12", "3.13"]


def module_of(name: str) -> str:
    return "stent" if name == "stent-core" else name.replace("-", "_")


def source_files(name: str) -> set[str]:
    """The files of the distribution's package on disk, relative to its folder (``src/stent/...``)."""
    root = PACKAGES / name
    return {
        path.relative_to(root).as_posix()
        for path in (root / "src" / module_of(name)).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_sdist_holds_sources_readme_changelog_and_license_only(name: str, built: Callable[[str], Built]) -> None:
    """The sdist has every source file, py.typed, README, CHANGELOG and LICENSE; no tests, caches or stray files."""
    names = set(built(name).sdist_names())
    sources = source_files(name)
    assert f"src/{module_of(name)}/py.typed" in sources
    wanted = sources | SDIST_FILES
    assert names == wanted, f"missing: {sorted(wanted - names)}, stray: {sorted(names - wanted)}"


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_wheel_holds_the_package_and_its_metadata_only(name: str, built: Callable[[str], Built]) -> None:
    """The wheel has exactly the package's source files (py.typed included) besides its .dist-info."""
    names = {n for n in built(name).wheel_names() if not n.split("/", 1)[0].endswith(".dist-info")}
    wanted = {path.removeprefix("src/") for path in source_files(name)}
    assert names == wanted, f"missing: {sorted(wanted - names)}, stray: {sorted(names - wanted)}"


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_wheel_metadata_is_complete(name: str, built: Callable[[str], Built]) -> None:
    """Summary, README, MIT license file, Python 3.11+, classifiers, and every dependency with a lower bound."""
    wheel = built(name)
    metadata = wheel.metadata()
    assert metadata["Name"] == name and metadata["Version"] == source_version(name)
    assert metadata["Summary"] and "asyncio" in metadata["Summary"]
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert metadata.get_payload().startswith(f"# {name}\n")
    assert metadata["Requires-Python"] == ">=3.11"
    assert metadata["License-Expression"] == "MIT" and metadata["License-File"] == "LICENSE"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in wheel.wheel_names())
    classifiers = metadata.get_all("Classifier") or []
    for version in SUPPORTED_PYTHONS:
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert "Typing :: Typed" in classifiers
    for requirement in map(Requirement, metadata.get_all("Requires-Dist") or []):
        lower = [spec for spec in requirement.specifier if spec.operator in (">=", "~=", "==")]
        assert lower, f"{name} requires {requirement} without a lower bound"


@pytest.mark.parametrize("name", [n for n in DISTRIBUTIONS if n != "stent-core"])
def test_adapter_requires_the_stent_core_of_this_tree_and_registers_its_plugin(
    name: str, built: Callable[[str], Built]
) -> None:
    """An adapter's stent-core requirement admits the core being released with it, and its entry point is there."""
    wheel = built(name)
    [core] = [
        r for r in map(Requirement, wheel.metadata().get_all("Requires-Dist") or []) if r.name == "stent-core"
    ]
    assert core.specifier.contains(source_version("stent-core"))
    entry_points = wheel.wheel_file(".dist-info/entry_points.txt")
    assert re.search(rf"^\[stent\]\n\w+ = {module_of(name)}\.plugin$", entry_points, re.MULTILINE)


def test_core_wheel_installs_the_stent_command_and_the_memory_plugin(built: Callable[[str], Built]) -> None:
    """stent-core's wheel declares the `stent` console script and the built-in memory:// plugin."""
    entry_points = built("stent-core").wheel_file(".dist-info/entry_points.txt")
    assert "[console_scripts]\nstent = stent.cli.main:main\n" in entry_points
    assert "[stent]\nmemory = stent.memory.plugin\n" in entry_points


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_changelog_has_an_entry_for_the_version(name: str) -> None:
    """CHANGELOG.md (Keep a Changelog) has a section for the version pyproject.toml gives, saying what was added."""
    text = (PACKAGES / name / "CHANGELOG.md").read_text()
    version = source_version(name)
    section = re.search(rf"^## \[?{re.escape(version)}\]? - (\d{{4}}-\d\d-\d\d|Unreleased)\n(.*?)(?=^## |\Z)", text,
                        re.MULTILINE | re.DOTALL)  # fmt: skip
    assert section, f"{name}/CHANGELOG.md has no '## {version} - <date or Unreleased>' section"
    assert re.search(r"^### (Added|Changed|Deprecated|Removed|Fixed|Security)$", section[2], re.MULTILINE)


def test_every_distribution_is_built_and_checked() -> None:
    """The list of distributions these tests build is the list of folders under packages/."""
    folders = sorted(p.name for p in PACKAGES.iterdir() if (p / "pyproject.toml").exists())
    assert folders == sorted(DISTRIBUTIONS)
    assert all(project_table(name)["name"] == name for name in folders)
    licenses = {(PACKAGES / name / "LICENSE").read_text() for name in folders}
    assert len(licenses) == 1 and next(iter(licenses)).startswith("MIT License\n")
