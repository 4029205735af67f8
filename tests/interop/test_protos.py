"""grpc.testing's protos live in their own descriptor pool, so they coexist with another copy of them
in protobuf's default pool (grpc's own tests register them as ``src/proto/grpc/testing/*.proto``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "app" / "interop" / "protos"
NAMES = ("empty", "messages", "test")


@pytest.fixture(scope="module")
def grpc_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """grpc/grpc's layout of the same protos, compiled the usual way (into the default pool), and
    protoc's default-pool output of ours; both importable from the returned directory."""
    root = tmp_path_factory.mktemp("grpc_copy")
    theirs = root / "src" / "proto" / "grpc" / "testing"
    theirs.mkdir(parents=True)
    for name in NAMES:
        text = (PROTOS / f"{name}.proto").read_text()
        (theirs / f"{name}.proto").write_text(text.replace('import "grpc/testing/', 'import "src/proto/grpc/testing/'))
    for package in ("src", "src/proto", "src/proto/grpc", "src/proto/grpc/testing"):
        (root / package / "__init__.py").touch()
    files = [f"src/proto/grpc/testing/{name}.proto" for name in NAMES]
    assert protoc.main(["protoc", f"-I{root}", f"--python_out={root}", *files]) == 0
    plain = root / "plain"
    plain.mkdir()
    files = [f"grpc/testing/{name}.proto" for name in NAMES]
    assert protoc.main(["protoc", f"-Igrpc/testing={PROTOS}", f"--python_out={plain}", *files]) == 0
    return root


def _python(code: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(path)!r}]; {code}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-first", "theirs-first"])
def test_our_grpc_testing_protos_and_another_copy_live_in_one_process(grpc_copy: Path, ours_first: bool) -> None:
    ours = "import app.interop.protos.test_pb2"
    theirs = "import src.proto.grpc.testing.test_pb2"
    check = (
        "from google.protobuf import descriptor_pool; from app.interop.descriptors import POOL; "
        "print(POOL.FindFileContainingSymbol('grpc.testing.TestService').name, "
        "descriptor_pool.Default().FindFileContainingSymbol('grpc.testing.TestService').name)"
    )
    proc = _python("; ".join([ours, theirs] if ours_first else [theirs, ours]) + "; " + check, grpc_copy)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["grpc/testing/test.proto", "src/proto/grpc/testing/test.proto"]


def test_the_two_copies_clash_in_one_pool(grpc_copy: Path) -> None:
    """Why ours has its own pool: protoc's usual output of our protos cannot be imported beside grpc's copy."""
    plain = grpc_copy / "plain" / "grpc" / "testing" / "empty_pb2.py"  # by file: "grpc" is grpcio's package
    proc = _python(
        "import importlib.util, src.proto.grpc.testing.empty_pb2; "
        f"spec = importlib.util.spec_from_file_location('plain_empty_pb2', {str(plain)!r}); "
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))",
        grpc_copy,
    )
    assert proc.returncode != 0
    assert "grpc.testing.Empty" in proc.stderr, proc.stderr[-2000:]
