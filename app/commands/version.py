"""The version ``rpcviz --version`` prints: the installed package's, else this checkout's pyproject.toml."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def version(distribution: str = "rpcviz", pyproject: Path = PYPROJECT) -> str:
    """The version from the package metadata; from ``pyproject`` when not installed
    (running from a source checkout); ``unknown`` when neither says."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        pass
    try:
        with pyproject.open("rb") as f:
            value = tomllib.load(f)["project"]["version"]
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError):
        return "unknown"
    return str(value)
