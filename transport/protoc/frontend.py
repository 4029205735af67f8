"""``python -m transport.protoc``: grpcio-tools' protoc with the rpcviz plugin at hand.

A thin wrapper, as ``python -m grpc_tools.protoc`` is: the arguments go to protoc
unchanged, plus ``--plugin=protoc-gen-rpcviz=<a script running this plugin>`` and
grpcio-tools' well-known protos (``google/protobuf/*.proto``) on the include path.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from importlib import resources
from pathlib import Path

PLUGIN_NAME = "protoc-gen-rpcviz"
#: The directory holding the ``transport`` package the plugin should run from: this one.
_ROOT = Path(__file__).resolve().parents[2]


def plugin_script(directory: Path) -> Path:
    """Write an executable that runs ``python -m transport.protoc.plugin`` from this checkout."""
    python, root = sys.executable, str(_ROOT)
    if os.name == "nt":
        script = directory / f"{PLUGIN_NAME}.cmd"
        script.write_text(f'@set "PYTHONPATH={root};%PYTHONPATH%"\r\n@"{python}" -P -m transport.protoc.plugin %*\r\n')
        return script
    script = directory / PLUGIN_NAME
    script.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH={shlex.quote(root)}${{PYTHONPATH:+:$PYTHONPATH}}\n"
        "export PYTHONPATH\n"
        f'exec {shlex.quote(python)} -P -m transport.protoc.plugin "$@"\n'
    )
    script.chmod(0o755)
    return script


def run_protoc(args: list[str]) -> int:
    """Run protoc on ``args`` (``-I``, ``--python_out``, ``--rpcviz_out``, files ...); its exit status.

    Raises ImportError without grpcio-tools."""
    from grpc_tools import protoc

    include = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory(prefix="rpcviz-protoc-") as tmp:
        plugin = (
            []
            if any(a.startswith(f"--plugin={PLUGIN_NAME}=") for a in args)
            else [f"--plugin={PLUGIN_NAME}={plugin_script(Path(tmp))}"]
        )
        return int(protoc.main(["protoc", *plugin, *args, f"-I{include}"]))


def main(argv: list[str] | None = None) -> int:
    try:
        return run_protoc(sys.argv[1:] if argv is None else argv)
    except ImportError as exc:
        print(
            f"python -m transport.protoc needs grpcio-tools, a development dependency: pip install grpcio-tools ({exc})",
            file=sys.stderr,
        )
        return 2
