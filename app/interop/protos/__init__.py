"""grpc.testing's protos (``empty``, ``messages``, ``test``) and protoc's modules for them."""
