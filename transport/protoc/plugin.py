"""The protoc plugin's entry point: ``CodeGeneratorRequest`` on stdin, ``CodeGeneratorResponse`` on stdout.

    python -m grpc_tools.protoc --plugin=protoc-gen-rpcviz=<script running this> --rpcviz_out=. x.proto

(``python -m transport.protoc`` writes that script and passes the flag for you.)
"""

from __future__ import annotations

import sys

from google.protobuf.compiler import plugin_pb2

from transport.protoc.generator import generate


def main() -> int:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
