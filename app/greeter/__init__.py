"""gRPC's helloworld Greeter: the protobuf messages, the service and a client stub."""
