"""What the plugin generates from, read out of protoc's descriptors: services, methods, message types.

Names are checked here so the rendered module is valid Python or the plugin fails
with a sentence naming the culprit (protoc prints it).
"""

from __future__ import annotations

import keyword
import re
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from transport.protoc.options import Options, PluginError

#: (client_streaming, server_streaming) -> the transport's name for the cardinality.
CARDINALITIES = {
    (False, False): "unary_unary",
    (False, True): "unary_stream",
    (True, False): "stream_unary",
    (True, True): "stream_stream",
}

#: Names the servicer class defines itself, which a method may not take.
_SERVICER_NAMES = frozenset({"method_handlers"})

# FileDescriptorProto field numbers, for source_code_info paths.
_SERVICE_FIELD = 6
_METHOD_FIELD = 2


@dataclass(frozen=True, slots=True)
class MessageType:
    """A message class: the Python module of its ``_pb2`` and its dotted name inside it."""

    module: str
    name: str


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    #: ``/package.Service/Method``, what goes on the wire in ``:path``.
    path: str
    #: The module-level constant holding ``path``.
    constant: str
    cardinality: str
    request: MessageType
    response: MessageType
    doc: str

    @property
    def client_streaming(self) -> bool:
        return self.cardinality.startswith("stream_")

    @property
    def server_streaming(self) -> bool:
        return self.cardinality.endswith("_stream")


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    full_name: str
    #: The module-level constant holding ``full_name``.
    constant: str
    doc: str
    methods: tuple[Method, ...]


@dataclass(frozen=True, slots=True)
class ServiceFile:
    proto_name: str
    services: tuple[Service, ...]

    def message_types(self) -> Iterator[MessageType]:
        for service in self.services:
            for method in service.methods:
                yield method.request
                yield method.response


def index_message_types(proto_files: Iterable[Any], options: Options) -> dict[str, MessageType]:
    """Every message protoc sent, nested ones too: ``.pkg.Outer.Inner`` -> where its class lives."""
    index: dict[str, MessageType] = {}
    for proto in proto_files:
        module = options.pb2_module(proto.name)
        prefix = f".{proto.package}." if proto.package else "."
        stack: list[tuple[str, Any]] = [("", message) for message in proto.message_type]
        while stack:
            parent, message = stack.pop()
            name = f"{parent}{message.name}"
            index[prefix + name] = MessageType(module, name)
            stack += [(f"{name}.", nested) for nested in message.nested_type]
    return index


def constant_name(*parts: str) -> str:
    """``("Greeter", "SayHello")`` -> ``GREETER_SAY_HELLO``."""
    words = (re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", part) for part in parts)
    return "_".join(words).upper()


def doc_text(comment: str) -> str:
    """A proto comment as docstring text: dedented, no trailing blanks."""
    lines = [line.rstrip() for line in comment.expandtabs(4).splitlines()]
    return textwrap.dedent("\n".join(lines)).strip("\n")


def read_service_file(proto: Any, types: dict[str, MessageType]) -> ServiceFile:
    """The services of one FileDescriptorProto, with the names they get in Python."""
    comments = {tuple(loc.path): loc.leading_comments for loc in proto.source_code_info.location}
    taken = {"TYPE_CHECKING": "an import of the generated module"}  # the one upper-case name it imports

    def claim(constant: str, what: str) -> str:
        if constant in taken:
            raise PluginError(f"{proto.name}: {what} and {taken[constant]} would both be named {constant}")
        taken[constant] = what
        return constant

    def message(type_name: str, what: str) -> MessageType:
        if type_name not in types:
            raise PluginError(f"{proto.name}: {what}: unknown message type {type_name}")
        return types[type_name]

    services = []
    for s, service in enumerate(proto.service):
        full_name = f"{proto.package}.{service.name}" if proto.package else service.name
        constant = claim(constant_name(service.name, "SERVICE_NAME"), f"the name of service {full_name}")
        methods = []
        for m, method in enumerate(service.method):
            what = f"method {full_name}.{method.name}"
            if keyword.iskeyword(method.name) or method.name in _SERVICER_NAMES:
                raise PluginError(f"{proto.name}: {what}: {method.name!r} cannot be a Python method name")
            methods.append(
                Method(
                    name=method.name,
                    path=f"/{full_name}/{method.name}",
                    constant=claim(constant_name(service.name, method.name), what),
                    cardinality=CARDINALITIES[method.client_streaming, method.server_streaming],
                    request=message(method.input_type, what),
                    response=message(method.output_type, what),
                    doc=doc_text(comments.get((_SERVICE_FIELD, s, _METHOD_FIELD, m), "")),
                )
            )
        services.append(
            Service(
                name=service.name,
                full_name=full_name,
                constant=constant,
                doc=doc_text(comments.get((_SERVICE_FIELD, s), "")),
                methods=tuple(methods),
            )
        )
    return ServiceFile(proto.name, tuple(services))
