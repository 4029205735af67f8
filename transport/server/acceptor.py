"""The server's accept loop: a cap on connections, and no crash or log storm when file descriptors run out.

asyncio's own accept loop, on EMFILE ("too many open files"), logs a full
traceback and retries a second later, again and again while the condition
lasts; and it accepts without limit, so a crowd of idle connections can take
every descriptor and lock out everyone else. This one:

- stops accepting at ``max_connections`` (new clients wait in the kernel's
  listen backlog, as with Go's ``netutil.LimitListener``) and asks the owner to
  make room (the server sends its longest-idle connection away, as nginx
  reuses idle keep-alive connections when ``worker_connections`` run out);
- on EMFILE/ENFILE/ENOBUFS/ENOMEM logs one warning (at most one a minute), asks the
  owner to make room likewise, stops watching the socket and looks again every
  ``RETRY_DELAY`` seconds, so it serves again within that delay once
  descriptors are free.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Accept errors that mean "out of resources for now", not "this client failed".
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: Seconds between accept attempts while descriptors are exhausted.
RETRY_DELAY = 0.25
#: Connections accepted per readiness event at most (others wait for the next turn).
ACCEPT_BATCH = 64
#: Seconds between two warnings about exhausted descriptors (the episodes in between are counted).
WARN_INTERVAL = 60.0
#: Descriptors kept free for everything else when the cap comes from the fd limit.
FD_RESERVE = 64
BACKLOG = 1024


def default_max_connections() -> int:
    """The process's soft descriptor limit, less a reserve for files and outgoing sockets."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(1, soft - FD_RESERVE)


async def open_listener(host: str, port: int) -> socket.socket:
    """A non-blocking listening TCP socket on the first address ``host`` resolves to."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:
        raise OSError(errno.EADDRNOTAVAIL, f"{host!r} resolves to no address")
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class Acceptor:
    """Accepts on ``sock`` and hands each connection to ``protocol_factory`` within ``max_connections``."""

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        max_connections: int,
        on_full: Callable[[], None],
    ) -> None:
        self.sock = sock
        self.max_connections = max_connections
        #: Connections accepted and not yet released by the owner.
        self.active = 0
        #: Times the descriptors ran out (each episode logged once).
        self.exhaustions = 0
        self._factory = protocol_factory
        self._on_full = on_full
        self._loop = asyncio.get_running_loop()
        self._watching = False
        self._exhausted = False
        self._retry: asyncio.TimerHandle | None = None
        self._warned_at: float | None = None
        self._closed = False
        self._pending: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._watch()

    def _watch(self) -> None:
        if not self._watching and not self._closed:
            self._watching = True
            self._loop.add_reader(self.sock.fileno(), self._accept_ready)

    def _unwatch(self) -> None:
        if self._watching:
            self._watching = False
            self._loop.remove_reader(self.sock.fileno())

    def release(self) -> None:
        """One connection closed: accept again if the cap had stopped us."""
        self.active -= 1
        if self.active < self.max_connections and not self._exhausted:
            self._watch()

    def _accept_ready(self) -> None:
        for _ in range(ACCEPT_BATCH):
            if self.active >= self.max_connections:
                self._unwatch()
                self._on_full()
                return
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _EXHAUSTED:
                    self._exhausted_now(exc)
                    return
                log.debug("accept failed: %s", exc)  # e.g. ECONNABORTED: that client gave up
                continue
            if self._exhausted:
                self._exhausted = False
                log.info("accepting connections again")
            self.active += 1
            conn.setblocking(False)
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = self._loop.create_task(self._serve(conn))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _serve(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except Exception as exc:  # noqa: BLE001 - that client's socket died before it was served
            log.debug("could not serve an accepted connection: %s", exc)
            conn.close()
            self.release()

    def _exhausted_now(self, exc: OSError) -> None:
        self._unwatch()
        if not self._exhausted:
            self._exhausted = True
            self.exhaustions += 1
            now = self._loop.time()
            if self._warned_at is None or now - self._warned_at >= WARN_INTERVAL:
                self._warned_at = now
                log.warning(
                    "cannot accept connections: %s (%d open); shedding idle ones, retrying every %gs "
                    "(said once a minute at most)",
                    exc.strerror or exc,
                    self.active,
                    RETRY_DELAY,
                )
        self._retry = self._loop.call_later(RETRY_DELAY, self._retry_accept)
        self._on_full()  # idle connections may be holding the descriptors

    def _retry_accept(self) -> None:
        self._retry = None
        if self._closed:
            return
        self._watch()
        self._accept_ready()

    def close(self) -> None:
        """Stop accepting and close the listening socket (accepted connections live on)."""
        if self._closed:
            return
        self._unwatch()
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self.sock.close()
