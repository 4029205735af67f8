"""Import directions: the transport never pulls in the UI stack (textual, rich), each subpackage
of transport imports alone, and ``transport.balancer`` imports nothing from ``transport.client``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UI_PACKAGES = ("textual", "rich")
SUBPACKAGES = sorted(p.parent.name for p in (ROOT / "transport").glob("*/__init__.py"))


def test_importing_transport_loads_no_ui_module() -> None:
    """Importing every transport package leaves no textual/rich module in sys.modules."""
    code = (
        "import transport, transport.proxy, transport.client, transport.server, transport.balancer, sys; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual','rich')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def _imports(path: Path, packages: tuple[str, ...], root: Path = ROOT) -> list[str]:
    """Every import in ``path`` of one of ``packages`` (or a module inside one), in any form:
    ``import``, ``from ... import`` (relative ones resolved against ``path``'s package),
    ``__import__`` and ``importlib.import_module``, at top level or lazily inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
            "__import__",
            "import_module",
        ):
            names = [a.value for a in node.args[:1] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        hits = [n for n in names if any(n == p or n.startswith(p + ".") for p in packages)]
        found += [f"{path.relative_to(root)}:{node.lineno}: {hits[0]}"] if hits else []
    return found


def _ui_imports(path: Path, root: Path = ROOT) -> list[str]:
    return _imports(path, UI_PACKAGES, root)


def test_no_transport_file_imports_ui() -> None:
    """No file under transport/ imports textual or rich, even lazily inside a function."""
    files = sorted((ROOT / "transport").rglob("*.py"))
    assert len(files) > 10
    offenders = [hit for f in files for hit in _ui_imports(f)]
    assert offenders == []


def test_static_check_detects_ui_import(tmp_path: Path) -> None:
    """The static check flags the import forms it claims to catch (so it can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import rich.console\nfrom textual.app import App\nimport richer\n"
        "def f():\n    __import__('rich')\n    importlib.import_module('textual.widgets')\n"
    )
    hits = [h.split(": ", 1)[1] for h in _ui_imports(bad, tmp_path)]
    assert hits == ["rich.console", "textual.app", "rich", "textual.widgets"]


def _import_alone(module: str) -> subprocess.CompletedProcess[str]:
    """Import ``module`` in a fresh interpreter with ``transport/__init__.py`` left out (it imports
    every subpackage, which would hide a cycle behind its order); print the transport modules loaded."""
    code = (
        "import sys, types; "
        "package = types.ModuleType('transport'); "
        f"package.__path__ = [{str(ROOT / 'transport')!r}]; "
        "sys.modules['transport'] = package; "
        f"import {module}; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('transport.'))))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("subpackage", SUBPACKAGES)
def test_each_subpackage_imports_alone(subpackage: str) -> None:
    """No import cycle between subpackages hides behind the import order of ``transport/__init__``."""
    proc = _import_alone(f"transport.{subpackage}")
    assert proc.returncode == 0, proc.stderr.strip().splitlines()[-1:]
    assert f"transport.{subpackage}" in proc.stdout.split()


def test_balancer_loads_nothing_from_client() -> None:
    """The policies run on the Subchannel protocol of ``transport.balancer``: importing them
    loads no ``transport.client`` module."""
    proc = _import_alone("transport.balancer")
    assert proc.returncode == 0, proc.stderr.strip().splitlines()[-1:]
    loaded = proc.stdout.split()
    assert "transport.balancer.round_robin" in loaded
    assert [m for m in loaded if m == "transport.client" or m.startswith("transport.client.")] == []


def test_no_balancer_file_imports_client() -> None:
    """No file under transport/balancer/ imports transport.client, even lazily or for typing only."""
    files = sorted((ROOT / "transport" / "balancer").rglob("*.py"))
    assert len(files) >= 4
    offenders = [hit for f in files for hit in _imports(f, ("transport.client",))]
    assert offenders == []


def test_static_check_resolves_relative_imports(tmp_path: Path) -> None:
    """The static check sees ``transport.client`` however it is spelled (so it can fail)."""
    module = tmp_path / "transport" / "balancer" / "bad.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from ..client import subchannel\nfrom .. import client\nfrom transport import client\n"
        "from . import base\nfrom transport.clients import x\n"
        "def f():\n    from transport.client.subchannel import Subchannel\n"
    )
    hits = [h.split(": ", 1)[1] for h in _imports(module, ("transport.client",), tmp_path)]
    assert hits == ["transport.client", "transport.client", "transport.client", "transport.client.subchannel"]
