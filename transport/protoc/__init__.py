"""rpcviz's protoc plugin: a typed client stub and a servicer base class per service.

    python -m transport.protoc -I. --python_out=. --pyi_out=. --rpcviz_out=. x.proto

writes ``x_rpcviz.py`` next to protoc's ``x_pb2.py``, shaped like grpcio's
``x_pb2_grpc.py`` and grpclib's ``x_grpc.py``: ``FooStub(channel)`` with one
multi-callable per method and ``FooServicer`` whose ``method_handlers()`` feeds
``Server.add_service``. The front end needs grpcio-tools (a development
dependency); the plugin itself, ``python -m transport.protoc.plugin``, only protobuf.

Options (``--rpcviz_opt=a,b``): ``module_suffix=_rpcviz`` names the generated
module; ``M<file.proto>=<python.module>`` says where a file's ``_pb2`` module is
imported from when it is not where its proto name puts it (as protoc-gen-go's ``M``).
"""
