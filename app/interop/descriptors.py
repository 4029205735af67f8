"""The descriptor pool of grpc.testing's protos (``grpc/testing/{empty,messages,test}.proto``).

They are kept out of protobuf's default pool on purpose: other packages (grpcio's own
test code, an application that vendors the interop protos) register the same
``grpc.testing.*`` names there, and one pool refuses a name defined twice, so both in
one process would fail at import. Server reflection finds this pool through the
registered handlers' message classes.
"""

from __future__ import annotations

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
