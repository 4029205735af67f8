"""The transport never pulls in the UI stack (textual, rich)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UI_PACKAGES = ("textual", "rich")


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


def _ui_imports(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
            "__import__",
            "import_module",
        ):
            names = [a.value for a in node.args[:1] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        found += [f"{path.relative_to(root)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in UI_PACKAGES]
    return found


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
