"""Regenerate the transport's protobuf modules with grpcio-tools' protoc.

    python scripts/generate_protos.py          # write them
    python scripts/generate_protos.py --check  # exit 1 if one differs from what protoc makes

Each ``*_pb2.py`` is protoc's output with one change: its file goes into
``transport.descriptors.POOL`` instead of protobuf's default pool (the module
docstring there says why). Each .proto is compiled under its canonical name
(``grpc/health/v1/health.proto``, ...) so reflection clients see the names they expect.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]

#: (canonical directory, directory in this repository, file name)
PROTOS = [
    ("grpc/health/v1", "transport/health", "health.proto"),
    ("grpc/reflection/v1", "transport/reflection/v1", "reflection.proto"),
    ("grpc/reflection/v1alpha", "transport/reflection/v1alpha", "reflection.proto"),
]

_DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("
_IMPORTS_END = "# @@protoc_insertion_point(imports)\n"
_POOL_IMPORT = "from transport.descriptors import POOL as _POOL  # rpcviz: not the default pool\n"


def generate(canonical: str, local: str, name: str) -> dict[Path, str]:
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
    module = module.replace(_IMPORTS_END, _POOL_IMPORT + _IMPORTS_END).replace(
        _DEFAULT_POOL, "_POOL.AddSerializedFile("
    )
    return {ROOT / local / f"{stem}.py": module, ROOT / local / f"{stem}.pyi": stub}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for canonical, local, name in PROTOS:
        for path, text in generate(canonical, local, name).items():
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
