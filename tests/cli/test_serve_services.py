"""``rpcviz serve`` as users deploy it: grpc.health.v1 and server reflection, asked by stock clients
(grpcio-health-checking, grpcio-reflection, grpcurl when installed) of a real process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from tests.cli.test_cli import TIMEOUT, Daemon

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    try:
        yield started
    finally:
        for d in started:
            d.kill()


def start_serve(daemons: list[Daemon], *args: str) -> tuple[Daemon, str]:
    d = Daemon("serve", "--port", "0", "--name", "pod-h", *args)
    daemons.append(d)
    return d, d.address()


def test_health_check_serving_and_not_found(daemons: list[Daemon]) -> None:
    """Check "" and "helloworld.Greeter" -> SERVING; an unknown service -> NOT_FOUND."""
    _, address = start_serve(daemons)
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        assert stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status == SERVING
        assert stub.Check(health_pb2.HealthCheckRequest(service="helloworld.Greeter"), timeout=5).status == SERVING
        with pytest.raises(grpc.RpcError) as info:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_watch_sees_not_serving_when_sigterm_starts_the_drain(daemons: list[Daemon]) -> None:
    """A Watch open when SIGTERM arrives hears NOT_SERVING and then ends OK (the status turned
    before the drain, not at its deadline); the process then exits 0 well within its grace."""
    d, address = start_serve(daemons, "--grace", "30")
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        watch = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
        assert next(watch).status == SERVING
        d.proc.send_signal(signal.SIGTERM)
        assert next(watch).status == NOT_SERVING
        assert list(watch) == []
        assert watch.code() == grpc.StatusCode.OK
    _, err = d.proc.communicate(timeout=TIMEOUT)  # far below the 30 s grace: nothing waited for it
    assert d.proc.returncode == 0, err
    assert "Traceback" not in err.decode()


def test_stock_reflection_client_lists_services_and_finds_say_hello(daemons: list[Daemon]) -> None:
    _, address = start_serve(daemons)
    with grpc.insecure_channel(address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = list(database.get_services())
        method = descriptor_pool.DescriptorPool(database).FindMethodByName("helloworld.Greeter.SayHello")
    assert services == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "helloworld.Greeter",
        "xds.service.orca.v3.OpenRcaService",  # ORCA's out-of-band load reports (--orca, on by default)
    ]
    assert (method.input_type.full_name, method.output_type.full_name) == (
        "helloworld.HelloRequest",
        "helloworld.HelloReply",
    )


GRPCURL = os.environ.get("GRPCURL") or shutil.which("grpcurl")


@pytest.mark.skipif(
    GRPCURL is None, reason="grpcurl is not installed (no Debian package; set GRPCURL=/path/to/grpcurl)"
)
def test_grpcurl_lists_and_describes_with_no_proto(daemons: list[Daemon]) -> None:
    assert GRPCURL is not None
    _, address = start_serve(daemons)

    def grpcurl(*args: str) -> str:
        result = subprocess.run(
            [GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert grpcurl(address, "list").split() == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "helloworld.Greeter",
        "xds.service.orca.v3.OpenRcaService",  # ORCA's out-of-band load reports (--orca, on by default)
    ]
    described = grpcurl(address, "describe", "helloworld.Greeter")
    assert "rpc SayHello ( .helloworld.HelloRequest ) returns ( .helloworld.HelloReply );" in described
    assert "string name = 1;" in grpcurl(address, "describe", "helloworld.HelloRequest")
    assert '"message": "Hello, Ada!"' in grpcurl("-d", '{"name": "Ada"}', address, "helloworld.Greeter/SayHello")
    assert '"status": "SERVING"' in grpcurl(address, "grpc.health.v1.Health/Check")
