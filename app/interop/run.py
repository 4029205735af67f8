"""Run one interop case against a server and say, in one line, what differed."""

from __future__ import annotations

import asyncio

from app.interop.cases import CASES
from transport import Channel, RpcError


def target(host: str, port: int) -> str:
    """grpc's ``--server_host``/``--server_port`` as a channel target (one address)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n") or "no reason given"


async def run_case(name: str, host: str, port: int, timeout: float) -> str | None:
    """None when case ``name`` passes against ``host:port`` within ``timeout`` seconds; otherwise one
    line naming what differed (a failed check, a call that failed where it should not, a hang)."""
    case = CASES[name]
    try:
        channel = Channel(target(host, port))
    except ValueError as exc:
        return _one_line(str(exc))
    try:
        await asyncio.wait_for(case(channel), timeout)
    except AssertionError as exc:
        return _one_line(str(exc))
    except RpcError as exc:
        return _one_line(f"a call failed with {exc.code.name} {exc.details!r}")
    except TimeoutError:
        return f"no result within {timeout:g}s"
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # we are being stopped (Ctrl-C), not a case outcome
        return "a call raised CancelledError into a task nobody cancelled"
    except Exception as exc:  # noqa: BLE001 - a transport bug is a failed case, reported in one line
        return _one_line(f"{type(exc).__name__}: {exc}")
    finally:
        await channel.close(grace=0)
    return None
