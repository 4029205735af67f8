"""The two grpc.health.v1 messages, encoded by hand.

Both are one-field protobuf messages; encoding them directly keeps the
transport free of a second registration of ``grpc.health.v1`` in protobuf's
global descriptor pool (which would clash with grpcio-health-checking's in
the same process).
"""

from __future__ import annotations

import enum


class ServingStatus(enum.IntEnum):
    UNKNOWN = 0
    SERVING = 1
    NOT_SERVING = 2
    SERVICE_UNKNOWN = 3  # Watch only


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> dict[int, int | bytes]:
    """Field number -> last value, for varint and length-delimited fields; others skipped."""
    fields: dict[int, int | bytes] = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            fields[number], pos = _read_varint(data, pos)
        elif wire_type == 2:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated field")
            fields[number] = data[pos : pos + length]
            pos += length
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
    return fields


def encode_request(service: str) -> bytes:
    raw = service.encode()
    return b"\x0a" + _varint(len(raw)) + raw if raw else b""


def decode_request(data: bytes) -> str:
    value = _fields(data).get(1, b"")
    if not isinstance(value, bytes):
        raise TypeError("HealthCheckRequest.service must be a string")
    return value.decode("utf-8")


def encode_response(status: ServingStatus) -> bytes:
    return b"\x08" + _varint(int(status)) if status else b""


def decode_response(data: bytes) -> ServingStatus:
    value = _fields(data).get(1, 0)
    if not isinstance(value, int):
        raise TypeError("HealthCheckResponse.status must be an enum")
    try:
        return ServingStatus(value)
    except ValueError:
        return ServingStatus.UNKNOWN
