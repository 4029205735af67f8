"""grpc's interop test service (``grpc.testing.TestService``) on our transport, and the 14 standard cases.

The protos in ``protos/`` are grpc's ``grpc/testing/{empty,messages,test}.proto`` as published in
grpc-proto (snapshot 6956c0e, 2023-01-10, Debian's ``grpc-proto`` package), unchanged; their
``*_pb2`` modules come from ``scripts/generate_protos.py``.
"""
