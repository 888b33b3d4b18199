"""A wheelhouse of the runtime dependencies of built stent wheels, made offline from this interpreter's installs.

The clean virtual environment of the wheel test installs with ``pip --no-index``: nothing is fetched, and the
dependencies are exactly the versions the dev venv tests with (constraints.txt).  Each one is repacked from its
installed files, as its RECORD lists them (what pip unpacked from the wheel it installed), with the tags of its
WHEEL file.  Files installed outside site-packages (scripts, data) are left out; pip makes scripts again from
``entry_points.txt``, and the runtime dependencies of stent need nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Written by the installer, not part of a wheel; RECORD is written anew.
INSTALLER_FILES = {"INSTALLER", "RECORD", "REQUESTED", "direct_url.json"}


def runtime_dependencies(requirements: Iterable[str], *, skip: Iterable[str] = ()) -> list[str]:
    """Names of the installed distributions that ``requirements`` need, transitively, without extras.

    ``skip`` names distributions that come from elsewhere (the stent wheels just built).
    """
    skipped = {canonicalize_name(name) for name in skip}
    seen: dict[str, str] = {}
    pending = list(requirements)
    while pending:
        requirement = Requirement(pending.pop())
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if name in skipped or name in seen:
            continue
        try:
            dist = importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            raise AssertionError(
                f"{requirement.name} is needed by the stent wheels but not installed here; run ./dev setup"
            ) from None
        assert requirement.specifier.contains(dist.version, prereleases=True), (
            f"{requirement} is needed but {dist.metadata['Name']} {dist.version} is installed"
        )
        seen[name] = dist.metadata["Name"]
        pending.extend(dist.requires or [])
    return sorted(seen.values())


def repack(name: str, dest: Path) -> Path:
    """A wheel of the installed distribution ``name``, written into ``dest``; returns its path."""
    dist = importlib.metadata.distribution(name)
    files = [path for path in dist.files or [] if _belongs_in_wheel(path)]
    dist_info = {path.parts[0] for path in files if path.parts[0].endswith(".dist-info")}
    assert len(dist_info) == 1, f"{name}: cannot tell its .dist-info folder among {sorted(dist_info)}"
    [info] = dist_info
    wheel_text = (Path(str(dist.locate_file(info))) / "WHEEL").read_text()
    tags = re.findall(r"^Tag: (\S+)$", wheel_text, re.MULTILINE)
    assert tags, f"{name} {dist.version} was not installed from a wheel (its WHEEL file has no tags)"
    target = dest / f"{info.removesuffix('.dist-info')}-{_compressed(tags)}.whl"
    record = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as wheel:
        for path in files:
            data = Path(str(dist.locate_file(path))).read_bytes()
            wheel.writestr(path.as_posix(), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path.as_posix()},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        wheel.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return target


def _belongs_in_wheel(path: importlib.metadata.PackagePath) -> bool:
    if path.parts[0] == ".." or "__pycache__" in path.parts or path.suffix == ".pyc":
        return False
    return not (path.parts[0].endswith(".dist-info") and path.name in INSTALLER_FILES)


def _compressed(tags: list[str]) -> str:
    """``py2-none-any`` and ``py3-none-any`` as one compressed tag set, ``py2.py3-none-any``."""
    parts = [sorted({tag.split("-")[i] for tag in tags}) for i in range(3)]
    return "-".join(".".join(part) for part in parts)
