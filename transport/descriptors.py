"""The descriptor pool of the transport's own protos: grpc.health.v1, grpc.reflection.v1 and v1alpha.

They are kept out of protobuf's default pool on purpose: grpcio-health-checking
and grpcio-reflection register their own copies of the same names there (under
other file names, with other options), and one pool refuses a name defined twice,
so an application using both would fail at import. Server reflection looks here
first, then in the default pool, where generated application protos live.
"""

from __future__ import annotations

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
