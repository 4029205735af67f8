"""``RPCVIZ_HOSTS``: a hosts file the dns resolver reads before getaddrinfo, so ``dns:///NAME:PORT``
can resolve to several loopback "pod IPs" with no change to the machine's /etc/hosts."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.greeter.service import Greeter
from tests.helpers import greet, served_by
from transport import Address, Channel, Server
from transport.client.hosts import HOSTS_ENV, lookup, parse_hosts
from transport.client.resolver import parse_target, resolve_all

HOSTS = """\
# the headless Service, one line per pod
127.0.0.11 pods.rpcviz.test
127.0.0.12 pods.rpcviz.test   # pod-2
127.0.0.13 Pods.Rpcviz.Test alias.rpcviz.test
127.0.0.11 pods.rpcviz.test
::1 six.rpcviz.test
not-an-ip pods.rpcviz.test
127.0.0.99
"""


def test_parse_hosts_lists_every_address_of_a_name_once_in_file_order() -> None:
    names = parse_hosts(HOSTS)
    assert names["pods.rpcviz.test"] == ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
    assert names["alias.rpcviz.test"] == ["127.0.0.13"]
    assert names["six.rpcviz.test"] == ["::1"]
    assert "not-an-ip" not in names and len(names) == 3


def test_lookup_is_case_insensitive_and_a_missing_file_lists_nothing(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text(HOSTS)
    assert lookup("PODS.rpcviz.test.", str(hosts)) == ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
    assert lookup("other.rpcviz.test", str(hosts)) == []
    assert lookup("pods.rpcviz.test", str(tmp_path / "gone")) == []


async def test_dns_target_resolves_every_listed_address_and_host_port_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text(HOSTS)
    monkeypatch.setenv(HOSTS_ENV, str(hosts))
    assert await resolve_all("dns:///pods.rpcviz.test:50051") == [
        Address("127.0.0.11", 50051),
        Address("127.0.0.12", 50051),
        Address("127.0.0.13", 50051),
    ]
    assert await parse_target("pods.rpcviz.test:7").resolve() == [Address("127.0.0.11", 7)]
    # a name the file does not list still goes to getaddrinfo
    assert Address("127.0.0.1", 80) in await resolve_all("dns:///localhost:80")


async def test_round_robin_over_a_dns_name_reaches_every_pod_ip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four servers on 127.0.0.11-14, one port, one name: round_robin over dns:/// lands 25 each."""
    servers = []
    port = 0
    for k in range(4):
        server = Server(name=f"pod-{k + 1}")
        server.add_service(Greeter())
        port = (await server.start(f"127.0.0.{11 + k}", port)).port
        servers.append(server)
    hosts = tmp_path / "hosts"
    hosts.write_text("".join(f"127.0.0.{11 + k} pods.rpcviz.test\n" for k in range(4)))
    monkeypatch.setenv(HOSTS_ENV, str(hosts))
    try:
        async with Channel.dial(f"dns:///pods.rpcviz.test:{port}", "round_robin") as channel:
            landed: dict[str, int] = {}
            for _ in range(100):
                name = served_by(await greet(channel, timeout=5))
                landed[name] = landed.get(name, 0) + 1
        assert sorted(landed.values()) == [25, 25, 25, 25], landed
    finally:
        for server in servers:
            await server.stop(grace=0.5)
