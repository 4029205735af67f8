"""grpc.reflection.v1alpha: the deprecated first version, which grpcio's reflection client still speaks."""
