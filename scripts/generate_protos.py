"""Regenerate the project's protobuf modules with grpcio-tools' protoc.

    python scripts/generate_protos.py          # write them
    python scripts/generate_protos.py --check  # exit 1 if one differs from what protoc makes

Each ``*_pb2.py`` is protoc's output with two changes: its file goes into a private
descriptor pool (``transport.descriptors.POOL`` for the transport's protos,
``app.interop.descriptors.POOL`` for grpc.testing) instead of protobuf's default pool
(the module docstrings there say why), and an import of another proto listed here
names the package it lives in (``from grpc.testing import empty_pb2`` would be grpcio's
``grpc`` package). Each .proto is compiled under its canonical name
(``grpc/health/v1/health.proto``, ...) so reflection clients see the names they expect.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]

_TRANSPORT_POOL = "transport.descriptors"
_INTEROP_POOL = "app.interop.descriptors"

#: (canonical directory, directory in this repository, file name, module holding its POOL)
PROTOS = [
    ("grpc/health/v1", "transport/health", "health.proto", _TRANSPORT_POOL),
    ("grpc/reflection/v1", "transport/reflection/v1", "reflection.proto", _TRANSPORT_POOL),
    ("grpc/reflection/v1alpha", "transport/reflection/v1alpha", "reflection.proto", _TRANSPORT_POOL),
    ("grpc/testing", "app/interop/protos", "empty.proto", _INTEROP_POOL),
    ("grpc/testing", "app/interop/protos", "messages.proto", _INTEROP_POOL),
    ("grpc/testing", "app/interop/protos", "test.proto", _INTEROP_POOL),
]

_DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("
_IMPORTS_END = "# @@protoc_insertion_point(imports)\n"
_POOL_IMPORT = "from {pool} import POOL as _POOL  # rpcviz: not the default pool\n"


def _imports() -> dict[str, str]:
    """protoc's import of each proto listed here -> the import of the module in this repository."""
    imports = {}
    for canonical, local, name, _ in PROTOS:
        stem = name.removesuffix(".proto") + "_pb2"
        imports[f"from {canonical.replace('/', '.')} import {stem} "] = f"from {local.replace('/', '.')} import {stem} "
    return imports


def generate(canonical: str, local: str, name: str, pool: str) -> dict[Path, str]:
    """protoc's Python module and stub for one .proto, keyed by their path in the repository."""
    with tempfile.TemporaryDirectory() as out:
        args = ["protoc", f"-I{canonical}={ROOT / local}", f"--python_out={out}", f"--pyi_out={out}"]
        if protoc.main([*args, f"{canonical}/{name}"]) != 0:
            raise SystemExit(f"protoc failed on {local}/{name}")
        stem = name.removesuffix(".proto") + "_pb2"
        module = (Path(out) / canonical / f"{stem}.py").read_text()
        stub = (Path(out) / canonical / f"{stem}.pyi").read_text()
    if module.count(_DEFAULT_POOL) != 1 or _IMPORTS_END not in module:
        raise SystemExit(f"unexpected protoc output for {name}: the pool line is not where it was")
    module = module.replace(_IMPORTS_END, _POOL_IMPORT.format(pool=pool) + _IMPORTS_END).replace(
        _DEFAULT_POOL, "_POOL.AddSerializedFile("
    )
    for theirs, ours in _imports().items():
        module, stub = module.replace(theirs, ours), stub.replace(theirs, ours)
    return {ROOT / local / f"{stem}.py": module, ROOT / local / f"{stem}.pyi": stub}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for canonical, local, name, pool in PROTOS:
        for path, text in generate(canonical, local, name, pool).items():
            if args.check:
                if not path.exists() or path.read_text() != text:
                    stale.append(str(path.relative_to(ROOT)))
            else:
                path.write_text(text)
    if stale:
        print(f"out of date (run python scripts/generate_protos.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
