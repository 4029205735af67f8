"""The plugin's parameter (``--rpcviz_opt``) and how proto file names become Python module names."""

from __future__ import annotations

from dataclasses import dataclass, field

#: What the generated module's name ends with, after the proto's stem.
DEFAULT_MODULE_SUFFIX = "_rpcviz"


class PluginError(ValueError):
    """Input the plugin cannot generate from; protoc prints the message and fails."""


@dataclass(frozen=True, slots=True)
class Options:
    module_suffix: str = DEFAULT_MODULE_SUFFIX
    #: proto file name -> the Python module of its ``_pb2`` (the ``M`` option).
    pb2_modules: dict[str, str] = field(default_factory=dict)

    def pb2_module(self, proto_name: str) -> str:
        """Where the ``_pb2`` module of ``proto_name`` is imported from."""
        return self.pb2_modules.get(proto_name) or module_name(proto_name, "_pb2")


def parse_options(parameter: str) -> Options:
    """``module_suffix=S`` and ``M<file.proto>=<module>``, comma-separated (protoc joins repeated opts so)."""
    suffix = DEFAULT_MODULE_SUFFIX
    modules: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in parameter.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise PluginError(f"option {item!r} needs a value (name=value)")
        if key == "module_suffix":
            if not ("x" + value).isidentifier():
                raise PluginError(f"module_suffix {value!r} is not usable in a Python module name")
            suffix = value
        elif key.startswith("M") and len(key) > 1:
            if not all(part.isidentifier() for part in value.split(".")):
                raise PluginError(f"option {item!r}: {value!r} is not a Python module name")
            modules[key[1:]] = value
        else:
            raise PluginError(f"unknown option {key!r} (known: module_suffix=..., M<file.proto>=<module>)")
    return Options(suffix, modules)


def strip_proto(proto_name: str) -> str:
    return proto_name.removesuffix(".proto").removesuffix(".protodevel")


def module_name(proto_name: str, suffix: str) -> str:
    """protoc's Python naming: ``pkg/a-b.proto`` -> ``pkg.a_b<suffix>``."""
    return strip_proto(proto_name).replace("-", "_").replace("/", ".") + suffix


def output_file(proto_name: str, suffix: str) -> str:
    """The generated file, next to where ``--python_out`` puts the ``_pb2``."""
    return module_name(proto_name, suffix).replace(".", "/") + ".py"
