"""Our server with both our proxies embedded on its event loop, or one of our proxies in its own process.

``python -m bench.proxy_servers ours+proxies`` prints ``READY <server> <l4 proxy> <l7 proxy>``: our server and,
on its event loop as rpcviz's cluster runs them, an ``L4Proxy`` and an ``L7Proxy`` in front of it.
``python -m bench.proxy_servers l4|l7 --backend PORT`` prints ``READY <port>``: that proxy alone.
Each serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Awaitable, Callable

from bench.servers import start_ours
from transport import Address
from transport.proxy import L4Proxy, L7Proxy

KINDS = ("ours+proxies", "l4", "l7")

Stopper = Callable[[], Awaitable[None]]


async def start_proxy(kind: str, backend: int) -> tuple[int, Stopper]:
    """An L4 or L7 proxy in front of 127.0.0.1:``backend``, on this event loop."""
    address = Address("127.0.0.1", backend)
    proxy = L4Proxy([address]) if kind == "l4" else L7Proxy([address])
    bound = await proxy.start()
    return bound.port, proxy.stop


async def start(kind: str, backend: int | None) -> tuple[list[int], Stopper]:
    if kind != "ours+proxies":
        if backend is None:
            raise SystemExit(f"{kind} needs --backend PORT")
        port, stop = await start_proxy(kind, backend)
        return [port], stop
    server_port, stop_server = await start_ours()
    l4_port, stop_l4 = await start_proxy("l4", server_port)
    l7_port, stop_l7 = await start_proxy("l7", server_port)

    async def stop_all() -> None:
        await stop_l7()
        await stop_l4()
        await stop_server()

    return [server_port, l4_port, l7_port], stop_all


async def serve(kind: str, backend: int | None) -> None:
    ports, stop = await start(kind, backend)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    print(f"READY {' '.join(map(str, ports))}", flush=True)
    try:
        await done.wait()
    finally:
        await asyncio.wait_for(stop(), 5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--backend", type=int, help="the backend port (l4 and l7)")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.kind, args.backend))


if __name__ == "__main__":
    main()
