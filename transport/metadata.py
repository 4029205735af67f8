"""Custom metadata: validation and the conversion to and from HTTP/2 headers.

Metadata is a tuple of ``(key, value)`` pairs, as in grpcio. Keys are lowercase
``[0-9a-z_.-]+``; values are ASCII ``str``, except keys ending in ``-bin``,
whose values are ``bytes`` and travel base64-encoded (sent unpadded, accepted
either way).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence

MetadataValue = str | bytes
Metadata = Sequence[tuple[str, MetadataValue]]

_KEY = re.compile(r"[0-9a-z_.\-]+\Z")
_VALUE = re.compile(r"[\x20-\x7e]*\Z")

# Headers that belong to HTTP/2 or the gRPC protocol itself, never to the
# application's metadata.
RESERVED_HEADERS = frozenset(
    {
        b"content-type",
        b"te",
        b"user-agent",
        b"grpc-timeout",
        b"grpc-encoding",
        b"grpc-accept-encoding",
        b"grpc-status",
        b"grpc-message",
        b"grpc-status-details-bin",
        b"grpc-previous-rpc-attempts",
        b"grpc-retry-pushback-ms",
        b"content-length",
        b"accept-encoding",
        b"connection",
        b"host",
        b"transfer-encoding",
        b"upgrade",
        b"keep-alive",
        b"proxy-connection",
    }
)


def encode_metadata(metadata: Metadata) -> list[tuple[bytes, bytes]]:
    """Turn metadata into header pairs; raise ValueError on an invalid key or value."""
    headers = []
    for key, value in metadata:
        if not _KEY.match(key) or key.startswith("grpc-") or key.encode() in RESERVED_HEADERS:
            raise ValueError(
                f"metadata key {key!r} is invalid: use lowercase [0-9a-z_.-], no 'grpc-' prefix, "
                "and no header the protocol itself uses"
            )
        if key.endswith("-bin"):
            raw = value.encode() if isinstance(value, str) else value
            encoded = base64.b64encode(raw).rstrip(b"=")
        else:
            if isinstance(value, bytes) or not _VALUE.match(value):
                raise ValueError(
                    f"metadata value for {key!r} must be printable ASCII text "
                    "(binary values need a key ending in '-bin')"
                )
            encoded = value.encode("ascii")
        headers.append((key.encode("ascii"), encoded))
    return headers


def decode_metadata(headers: Iterable[tuple[bytes, bytes]]) -> tuple[tuple[str, MetadataValue], ...]:
    """Pick the application metadata out of received headers.

    Pseudo-headers and protocol headers are dropped; ``-bin`` values are
    base64-decoded (a value that does not decode is kept raw rather than lost).
    """
    result: list[tuple[str, MetadataValue]] = []
    for name, value in headers:
        if name[:1] == b":" or name in RESERVED_HEADERS:
            continue
        key = name.decode("ascii", "replace")
        if key.endswith("-bin"):
            try:
                result.append((key, base64.b64decode(value + b"=" * (-len(value) % 4))))
            except (binascii.Error, ValueError):
                result.append((key, value))
        else:
            result.append((key, value.decode("ascii", "replace")))
    return tuple(result)


def metadata_value(metadata: Metadata, key: str) -> MetadataValue | None:
    """The first value of ``key`` in ``metadata``, or None."""
    for k, v in metadata:
        if k == key:
            return v
    return None
