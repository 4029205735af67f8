"""The 14 standard interop cases, both ways and through the L4 proxy, with real processes:

- a grpcio client (tests/interop/grpcio_client.py) against ``rpcviz interop-server``;
- ``rpcviz interop-client`` against a grpcio TestService (tests/interop/grpcio_server.py);
- ``rpcviz interop-client`` through the embedded L4 proxy to ``rpcviz interop-server``.

The grpcio peers are proven on their own in test_grpcio_harness.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.interop.grpcio_client import CASES as GRPCIO_CASES
from tests.interop.grpcio_server import start_grpcio_server
from transport.address import Address
from transport.proxy import L4Proxy

ROOT = Path(__file__).resolve().parents[2]
NAMES = list(GRPCIO_CASES)
#: Liveness bounds: a case takes milliseconds; a hang fails the test instead of blocking the suite.
CASE_TIMEOUT = 20.0
PROCESS_TIMEOUT = 60.0
#: Cases that may end (cancelled at once, a 1 ms deadline) before the new channel has connected:
#: nothing needs to reach the server.
SENDS_MAYBE_NOTHING = {"cancel_after_begin", "timeout_on_sleeping_server"}
_LISTENING = re.compile(r"^interop server on (127\.0\.0\.1:\d+)$")


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


class InteropServer:
    """One ``python -m app interop-server --port 0`` process; stop it with :meth:`stop`."""

    def __init__(self, stderr_path: Path, *extra: str) -> None:
        self.stderr_path = stderr_path
        self._stderr = stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "interop-server", "--port", "0", *extra],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        line = self._first_line(15.0)
        match = _LISTENING.match(line)
        if match is None:
            self.kill()
            raise AssertionError(f"interop-server did not start: {line!r} {self.stderr()[-1500:]}")
        self.address = match.group(1)

    def _first_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        data = b""
        while not data.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace").strip()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")  # the child writes it; we only read

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> tuple[int, str]:
        """Send ``sig`` (a graceful stop), wait for the exit; the exit code and the rest of stdout."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, _ = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        finally:
            self._stderr.close()
        return self.proc.returncode, out.decode(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()
        self._stderr.close()


@pytest.fixture(scope="module")
def interop_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteropServer]:
    """``rpcviz interop-server`` for the whole module, as one server serves a whole interop matrix."""
    server = InteropServer(tmp_path_factory.mktemp("interop") / "server.stderr")
    yield server
    if server.proc.poll() is None:
        server.stop()


async def interop_client(host: str, port: int, name: str, *extra: str) -> tuple[int, str, str]:
    """Run ``python -m app interop-client`` for case ``name``: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "interop-client",
        "--server_host",
        host,
        "--server_port",
        str(port),
        "--test_case",
        name,
        "--case_timeout",
        str(CASE_TIMEOUT),
        *extra,
        cwd=ROOT,
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), PROCESS_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.communicate()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def _assert_ok(name: str, result: tuple[int, str, str]) -> None:
    code, out, err = result
    assert (code, out) == (0, f"OK: {name}\n"), err


# --- the 14 cases, three ways --------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
async def test_grpcio_client_against_rpcviz_interop_server(interop_server: InteropServer, name: str) -> None:
    async with grpc.aio.insecure_channel(interop_server.address) as channel:
        await asyncio.wait_for(GRPCIO_CASES[name](channel), CASE_TIMEOUT)
    assert interop_server.proc.poll() is None, interop_server.stderr()[-1500:]


@pytest.mark.parametrize("name", NAMES)
async def test_rpcviz_interop_client_against_grpcio_server(name: str) -> None:
    server, port = await start_grpcio_server()
    try:
        result = await interop_client("127.0.0.1", port, name)
    finally:
        await server.stop(grace=1)
    _assert_ok(name, result)


@pytest.mark.parametrize("name", NAMES)
async def test_rpcviz_interop_client_through_the_l4_proxy(interop_server: InteropServer, name: str) -> None:
    async with L4Proxy([Address.parse(interop_server.address)]) as proxy:
        result = await interop_client(proxy.address.host, proxy.address.port, name)
        relayed = proxy.backends[0]
        if name not in SENDS_MAYBE_NOTHING:
            assert relayed.connections_total >= 1 and relayed.bytes_up > 0 and relayed.bytes_down > 0
    _assert_ok(name, result)


# --- the commands as an interop matrix drives them -------------------------------------------


def test_interop_client_knows_the_14_cases_by_grpcs_names() -> None:
    from app.commands.interop_client import CASE_NAMES
    from app.interop.cases import CASES

    assert list(CASES) == list(CASE_NAMES) == NAMES


async def test_interop_client_names_what_differed_in_one_line() -> None:
    """A TestService that implements UnimplementedCall fails unimplemented_method: exit 1, one line."""
    from app.interop.protos.empty_pb2 import Empty

    async def implemented(request: Empty, context: grpc.aio.ServicerContext) -> Empty:
        return Empty()

    handler = grpc.unary_unary_rpc_method_handler(
        implemented, request_deserializer=Empty.FromString, response_serializer=Empty.SerializeToString
    )
    server, port = await start_grpcio_server(overrides={"UnimplementedCall": handler})
    try:
        code, out, err = await interop_client("127.0.0.1", port, "unimplemented_method")
    finally:
        await server.stop(grace=1)
    assert (code, out) == (1, "")
    assert err == (
        "rpcviz interop-client: FAIL: unimplemented_method: "
        "TestService/UnimplementedCall ended with OK '', expected UNIMPLEMENTED\n"
    )


async def test_interop_client_against_nothing_fails_in_one_line(unused_tcp_port: int) -> None:
    code, out, err = await interop_client("127.0.0.1", unused_tcp_port, "empty_unary", "--use_tls=false")
    assert (code, out) == (1, "")
    assert err.startswith("rpcviz interop-client: FAIL: empty_unary: a call failed with UNAVAILABLE")
    assert err.count("\n") == 1, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interop_server_stops_gracefully(tmp_path: Path, sig: signal.Signals) -> None:
    server = InteropServer(tmp_path / "server.stderr", "--use_tls=false")
    code, out = server.stop(sig)
    assert code == 0, server.stderr()
    assert f"interop server: {sig.name}, stopping" in out
    assert "interop server: stopped after 0 calls" in out
