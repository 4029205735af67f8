"""The transport's protoc output is current, lives in its own descriptor pool, and imports alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_generated_modules_match_what_protoc_makes_of_the_protos() -> None:
    proc = subprocess.run(
        [sys.executable, "scripts/generate_protos.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("stock_first", [True, False], ids=["stock-first", "ours-first"])
def test_our_grpc_protos_and_grpcios_copies_live_in_one_process(stock_first: bool) -> None:
    """grpcio-health-checking and grpcio-reflection register grpc.health.v1 and grpc.reflection.v1alpha
    in protobuf's default pool under other file names; ours would clash there, so they are not in it."""
    stock = "import grpc_health.v1.health_pb2, grpc_reflection.v1alpha.reflection_pb2"
    ours = "import transport.health, transport.reflection"
    check = (
        "from google.protobuf import descriptor_pool; from transport.descriptors import POOL; "
        "print(POOL.FindFileContainingSymbol('grpc.reflection.v1alpha.ServerReflection').name, "
        "POOL.FindFileContainingSymbol('grpc.health.v1.Health').name, "
        "descriptor_pool.Default().FindFileContainingSymbol('grpc.health.v1.Health').name)"
    )
    proc = _python("; ".join([stock, ours] if stock_first else [ours, stock]) + "; " + check)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        "grpc/reflection/v1alpha/reflection.proto",
        "grpc/health/v1/health.proto",
        "grpc_health/v1/health.proto",
    ]


@pytest.mark.parametrize(
    "module",
    [
        "transport.reflection",
        "transport.health",
        "transport.descriptors",
        "transport.server.call",
        "transport.health.health_rpcviz",
        "app.greeter.helloworld_rpcviz",
        "transport.protoc",
        "transport.protoc.plugin",
        "transport.protoc.frontend",
    ],
)
def test_module_imports_alone(module: str) -> None:
    proc = _python(f"import {module}")
    assert proc.returncode == 0, proc.stderr
