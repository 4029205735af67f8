"""A hosts file of our own that the DNS resolver reads before getaddrinfo.

``RPCVIZ_HOSTS=/path/to/hosts`` names a file in the ``/etc/hosts`` format (``ADDRESS NAME [ALIAS...]``
per line, ``#`` comments). A name it lists resolves to every address listed for it, in file order,
as DNS answers for a Kubernetes headless Service (one A record per pod); a name it does not list
goes to getaddrinfo as before. It lets ``dns:///pods.rpcviz.test:50051`` reach several loopback
"pod IPs" without editing the machine's ``/etc/hosts`` (``rpcviz cluster up`` writes such a file).
A missing or unreadable file lists nothing, as glibc treats a missing ``/etc/hosts``.
"""

from __future__ import annotations

import ipaddress
import os

#: The environment variable naming the file.
HOSTS_ENV = "RPCVIZ_HOSTS"


def parse_hosts(text: str) -> dict[str, list[str]]:
    """``/etc/hosts`` text -> {lower-case name: [address, ...]} (each address once, in file order);
    lines whose first field is not an IP address are skipped."""
    names: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.partition("#")[0].split()
        if len(fields) < 2:
            continue
        try:
            address = str(ipaddress.ip_address(fields[0]))
        except ValueError:
            continue
        for name in fields[1:]:
            listed = names.setdefault(name.lower().rstrip("."), [])
            if address not in listed:
                listed.append(address)
    return names


def hosts_path() -> str | None:
    """The file ``RPCVIZ_HOSTS`` names, or None when it is unset or empty."""
    return os.environ.get(HOSTS_ENV) or None


def lookup(host: str, path: str | None = None) -> list[str]:
    """Every address the hosts file (``path``, else ``$RPCVIZ_HOSTS``) lists for ``host``; [] if none."""
    path = path or hosts_path()
    if path is None:
        return []
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            text = file.read(1 << 20)  # a hosts file, not a data set: 1 MiB is plenty
    except OSError:
        return []
    return parse_hosts(text).get(host.lower().rstrip("."), [])
