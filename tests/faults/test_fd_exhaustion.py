"""A crowd of idle connections must not lock clients out, and running out of descriptors must not
make the server crash or flood its log.

``rpcviz serve`` runs with RLIMIT_NOFILE 1024, as in a container with the common
default ulimit, and an attacker on 127.0.0.1 opens 1,100 connections that finish the
HTTP/2 handshake and then sit idle.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from hyperframe.frame import SettingsFrame

from tests.faults.rawclient import PREFACE
from tests.helpers import FAST, greet
from tests.processes import ServeProcess
from transport import Channel

ATTACKERS = 1100
HELLO = PREFACE + SettingsFrame(0).serialize()


def open_idle_connections(port: int, n: int) -> list[socket.socket]:
    """``n`` connections that send the preface and SETTINGS, then nothing (the kernel's backlog takes the rest)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        socks.append(s)
    time.sleep(0.2)
    for s in socks:
        try:
            s.send(HELLO)
        except OSError:
            pass
    return socks


async def call_succeeds_within(address: str, timeout: float) -> float:
    """Seconds until a fresh channel's greet succeeds (failing the test after ``timeout``)."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    async with Channel.dial(address, options=FAST) as channel:
        await asyncio.wait_for(greet(channel, timeout=timeout, wait_for_ready=True), timeout)
    return loop.time() - began


@pytest.mark.parametrize("extra", [(), ("--max-connections", "5000")], ids=["default-cap", "cap-above-fd-limit"])
async def test_idle_crowd_neither_locks_clients_out_nor_floods_the_log(extra: tuple[str, ...]) -> None:
    """With the default cap (the fd limit less a reserve) the server never runs out of descriptors; with a
    cap above the limit it does, and says so once. Either way a new client is served while the crowd holds
    its connections (idle ones are shed to make room), and at once after the crowd leaves."""
    pod = await ServeProcess.start("pod-1", 0, *extra, fd_limit=1024)
    socks: list[socket.socket] = []
    try:
        socks = await asyncio.to_thread(open_idle_connections, pod.port, ATTACKERS)
        await asyncio.sleep(1.0)
        assert await call_succeeds_within(pod.address, 15) < 15
        for s in socks:
            s.close()
        socks = []
        await asyncio.sleep(0.2)
        after = await call_succeeds_within(pod.address, 5)
        assert after < 2.0, f"served {after:.2f}s after the crowd left"
    finally:
        for s in socks:
            s.close()
        _, err = await pod.terminate_with_stderr()
        await pod.kill()
    assert "Traceback" not in err
    assert len(err.splitlines()) <= 2, err[:2000]
