"""Regenerate the project's protobuf modules and rpcviz stubs with grpcio-tools' protoc.

    python scripts/generate_protos.py          # write them
    python scripts/generate_protos.py --check  # exit 1 if one differs from what protoc makes

Each ``*_pb2.py`` is protoc's output; all but helloworld's have two changes: their
file goes into a private descriptor pool (``transport.descriptors.POOL`` for the
transport's protos, ``app.interop.descriptors.POOL`` for grpc.testing) instead of
protobuf's default pool (the module docstrings there say why), and an import of
another proto listed here names the package it lives in (``from grpc.testing import
empty_pb2`` would be grpcio's ``grpc`` package). Each .proto is compiled under its
canonical name (``grpc/health/v1/health.proto``, ...) so reflection clients see the
names they expect. ``*_rpcviz.py`` is what the rpcviz protoc plugin
(``transport/protoc``) makes of a proto's services.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's transport/protoc, not an installed one

from transport.protoc.frontend import run_protoc


@dataclass(frozen=True, slots=True)
class Proto:
    #: The directory protoc sees the file in ("" = the top level): it makes the file's canonical name.
    canonical: str
    #: The directory in this repository.
    local: str
    name: str
    #: The module whose POOL its ``_pb2`` registers in; None = protobuf's default pool.
    pool: str | None = "transport.descriptors"
    #: Also generate ``<stem>_rpcviz.py`` (stubs and servicers) with our plugin.
    stubs: bool = False

    @property
    def proto_name(self) -> str:
        return f"{self.canonical}/{self.name}" if self.canonical else self.name

    @property
    def stem(self) -> str:
        return self.name.removesuffix(".proto")

    @property
    def pb2_module(self) -> str:
        return f"{self.local.replace('/', '.')}.{self.stem}_pb2"


_INTEROP_POOL = "app.interop.descriptors"

PROTOS = [
    Proto("", "app/greeter", "helloworld.proto", pool=None, stubs=True),
    Proto("grpc/health/v1", "transport/health", "health.proto", stubs=True),
    Proto("grpc/reflection/v1", "transport/reflection/v1", "reflection.proto"),
    Proto("grpc/reflection/v1alpha", "transport/reflection/v1alpha", "reflection.proto"),
    Proto("grpc/testing", "app/interop/protos", "empty.proto", pool=_INTEROP_POOL),
    Proto("grpc/testing", "app/interop/protos", "messages.proto", pool=_INTEROP_POOL),
    Proto("grpc/testing", "app/interop/protos", "test.proto", pool=_INTEROP_POOL, stubs=True),
    Proto("xds/data/orca/v3", "transport/orca/v3", "orca_load_report.proto"),
    Proto("xds/service/orca/v3", "transport/orca/v3", "orca.proto", stubs=True),
    Proto("bench/protos", "bench/protos", "bench.proto", pool=None, stubs=True),
]
#: Where each proto's ``_pb2`` is imported from, for the plugin (protoc's own guess is its canonical name).
_MODULES = ",".join(f"M{p.proto_name}={p.pb2_module}" for p in PROTOS)

_DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("
_IMPORTS_END = "# @@protoc_insertion_point(imports)\n"
_POOL_IMPORT = "from {pool} import POOL as _POOL  # rpcviz: not the default pool\n"


def _imports() -> dict[str, str]:
    """protoc's import of each proto listed here -> the import of the module in this repository."""
    imports = {}
    for p in PROTOS:
        if p.canonical:
            stem = p.stem + "_pb2"
            imports[f"from {p.canonical.replace('/', '.')} import {stem} "] = (
                f"from {p.local.replace('/', '.')} import {stem} "
            )
    return imports


def generate(proto: Proto) -> dict[Path, str]:
    """protoc's Python module and stub for one .proto, and our plugin's, keyed by their path in the repository."""
    local = ROOT / proto.local
    with tempfile.TemporaryDirectory() as out:
        args = [f"-I{proto.canonical}={local}" if proto.canonical else f"-I{local}"]
        # where an import of another proto listed here finds it (orca.proto's of the load report)
        args += sorted(
            {f"-I{p.canonical}={ROOT / p.local}" for p in PROTOS if p.canonical and p.canonical != proto.canonical}
        )
        args += [f"--python_out={out}", f"--pyi_out={out}"]
        if proto.stubs:
            args += [f"--rpcviz_out={out}", f"--rpcviz_opt={_MODULES}"]
        if run_protoc([*args, proto.proto_name]) != 0:
            raise SystemExit(f"protoc failed on {proto.local}/{proto.name}")
        made = Path(out) / proto.canonical
        names = [f"{proto.stem}_pb2.py", f"{proto.stem}_pb2.pyi"] + [f"{proto.stem}_rpcviz.py"] * proto.stubs
        files = {local / name: (made / name).read_text(encoding="utf-8") for name in names}
    module = local / f"{proto.stem}_pb2.py"
    if proto.pool is not None:
        text = files[module]
        if text.count(_DEFAULT_POOL) != 1 or _IMPORTS_END not in text:
            raise SystemExit(f"unexpected protoc output for {proto.name}: the pool line is not where it was")
        files[module] = text.replace(_IMPORTS_END, _POOL_IMPORT.format(pool=proto.pool) + _IMPORTS_END).replace(
            _DEFAULT_POOL, "_POOL.AddSerializedFile("
        )
        for theirs, ours in _imports().items():
            for path in (module, local / f"{proto.stem}_pb2.pyi"):
                files[path] = files[path].replace(theirs, ours)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for proto in PROTOS:
        for path, text in generate(proto).items():
            if args.check:
                if not path.exists() or path.read_text(encoding="utf-8") != text:
                    stale.append(str(path.relative_to(ROOT)))
            else:
                path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date (run python scripts/generate_protos.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
