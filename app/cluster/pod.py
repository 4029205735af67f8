"""A pod: one Greeter server with a load model, stoppable and restartable on its port."""

from __future__ import annotations

from app.cluster.load import LoadModel
from app.greeter.service import SAY_HELLO, Greeter
from transport import Address, Server, ServerOptions
from transport.health import HealthService, ServingStatus


class Pod:
    """``pod #index``: a real gRPC server on 127.0.0.1."""

    def __init__(
        self, index: int, load: LoadModel, host: str = "127.0.0.1", options: ServerOptions | None = None
    ) -> None:
        self.index = index
        self.name = f"pod-{index}"
        self.host = host
        self.load_model = load
        self.health = HealthService()
        self.server = Server(name=self.name, options=options)
        self.server.add_service(Greeter(work=self.load_model.work))
        self.server.add_service(self.health)
        self._address: Address | None = None

    @property
    def address(self) -> Address:
        if self._address is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._address

    @property
    def address_or_none(self) -> Address | None:
        """The pod's address once it has been started, else None."""
        return self._address

    @property
    def serving(self) -> bool:
        return self.server.serving

    async def start(self) -> Address:
        """Start serving; a restart reuses the pod's port and keeps its counters."""
        if self.server.serving:
            return self.address
        self._address = await self.server.start(self.host, self._address.port if self._address else 0)
        self.health.resume()
        return self._address

    async def stop(self, grace: float | None = 0.0) -> None:
        """Stop like a pod being deleted: NOT_SERVING, GOAWAY, then calls still
        running are cut off after ``grace``."""
        self.health.shutdown()
        await self.server.stop(grace=grace)

    def kill(self) -> None:
        """Crash: every connection drops at once; calls in flight fail UNAVAILABLE."""
        self.health.shutdown()
        self.server.kill()

    @property
    def draining(self) -> bool:
        return self.health.status("") is ServingStatus.NOT_SERVING and self.serving

    def set_draining(self, draining: bool) -> None:
        """Report NOT_SERVING (drain) or SERVING; the server keeps answering calls either way."""
        self.health.set("", ServingStatus.NOT_SERVING if draining else ServingStatus.SERVING)

    # --- figures ------------------------------------------------------------

    @property
    def calls_ok(self) -> int:
        """Greets this pod answered OK (health checks are not counted)."""
        return self.server.stats.method_ok(SAY_HELLO)

    @property
    def calls_in_flight(self) -> int:
        """Greets running or queued at this pod's workers."""
        return self.load_model.running + self.load_model.queued

    @property
    def connections(self) -> int:
        return self.server.stats.connections_open

    @property
    def goaways(self) -> int:
        """Connections this pod sent away for their age (MAX_CONNECTION_AGE, GOAWAY ``max_age``)."""
        return self.server.stats.connections_aged

    def load(self) -> float:
        return self.load_model.load()

    def reset(self) -> None:
        self.server.stats.reset()
        self.load_model.reset()
