"""grpc.reflection.v1: the reflection protocol's messages (protoc output, see scripts/generate_protos.py)."""
