"""The descriptor pool of the transport's own protos: grpc.health.v1, grpc.reflection.v1 and v1alpha,
and ORCA's xds.data.orca.v3 and xds.service.orca.v3.

They are kept out of protobuf's default pool on purpose: grpcio-health-checking
and grpcio-reflection register their own copies of the same names there (under
other file names, with other options), as the ``xds-protos`` package does for
ORCA's, and one pool refuses a name defined twice, so an application using both
would fail at import. Server reflection looks here first, then in the default
pool, where generated application protos live.

A pool holds a file only with the files it imports: the well-known type ours
import (``google/protobuf/duration.proto``, by ORCA's service) is added here too.
"""

from __future__ import annotations

from google.protobuf import descriptor_pool, duration_pb2

POOL = descriptor_pool.DescriptorPool()
POOL.AddSerializedFile(duration_pb2.DESCRIPTOR.serialized_pb)
