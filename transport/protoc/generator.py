"""protoc's request in, the generated files out: one ``*_rpcviz.py`` per proto file that has services."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from transport.protoc.model import index_message_types, read_service_file
from transport.protoc.options import PluginError, output_file, parse_options
from transport.protoc.render import render


def generate(request: Any) -> Any:
    """A ``CodeGeneratorResponse`` for a ``CodeGeneratorRequest``; bad input becomes its ``error``."""
    response = plugin_pb2.CodeGeneratorResponse()
    # Only services are read, and editions change nothing about them.
    response.supported_features = (
        plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
        | plugin_pb2.CodeGeneratorResponse.FEATURE_SUPPORTS_EDITIONS
    )
    response.minimum_edition = descriptor_pb2.EDITION_PROTO2
    response.maximum_edition = descriptor_pb2.EDITION_2024
    try:
        options = parse_options(request.parameter)
        types = index_message_types(request.proto_file, options)
        protos = {proto.name: proto for proto in request.proto_file}
        for name in request.file_to_generate:
            proto = protos[name]
            if not proto.service:
                continue
            generated = response.file.add()
            generated.name = output_file(name, options.module_suffix)
            generated.content = render(read_service_file(proto, types))
    except PluginError as exc:
        del response.file[:]
        response.error = str(exc)
    return response
