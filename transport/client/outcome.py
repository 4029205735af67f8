"""How a finished client stream becomes a call's status.

The status is in the trailers (or the Trailers-Only headers); a reset, a lost
connection, a non-200 or non-gRPC answer, or a body cut in the middle of a
message each get the status gRPC specifies for them.
"""

from __future__ import annotations

from h2.errors import ErrorCodes

from transport.client.connection import StreamNotProcessed
from transport.http2.stream import Stream
from transport.metadata import decode_metadata
from transport.status import RpcError, StatusCode, status_from_http, status_from_rst
from transport.wire import percent_decode

#: ``grpc-status`` values as sent, to their code (StatusCode(int(value)) costs an Enum call per call).
_CODES = {str(int(code)).encode(): code for code in StatusCode}


def stream_error(stream: Stream) -> RpcError | None:
    """The status of a stream that has ended (END_STREAM or reset); None for OK."""
    error = stream.error
    if error is not None and not (error.error_code == ErrorCodes.NO_ERROR and stream.trailers is not None):
        if error.status is not None:
            return error.status
        if error.unprocessed:
            return StreamNotProcessed(
                "stream refused by the server (REFUSED_STREAM)"
                if error.error_code == ErrorCodes.REFUSED_STREAM
                else error.reason
            )
        if error.error_code is None:
            return RpcError(StatusCode.UNAVAILABLE, error.reason)
        return RpcError(status_from_rst(error.error_code), error.reason)
    headers = stream.headers or []
    if stream.discard_data or stream.headers is None:  # (else the connection found HTTP 200 and gRPC's content-type)
        http_status = b""
        content_type = b""
        for name, value in headers:
            if name == b":status":
                http_status = value
            elif name == b"content-type":
                content_type = value
        if http_status != b"200":
            code = status_from_http(int(http_status)) if http_status.isdigit() else StatusCode.UNKNOWN
            reason = http_status.decode("ascii", "replace") or "(none)"
            return RpcError(code, f"server answered HTTP {reason}, not gRPC")
        if not content_type.startswith(b"application/grpc"):
            return RpcError(
                StatusCode.UNKNOWN,
                f"server answered content-type {content_type.decode('ascii', 'replace')!r}, not gRPC",
            )
    trailers = stream.trailers if stream.trailers is not None else headers
    grpc_status = None
    grpc_message = b""
    for name, value in trailers:
        if name == b"grpc-status":
            grpc_status = value
        elif name == b"grpc-message":
            grpc_message = value
    if grpc_status is None:
        return RpcError(StatusCode.UNKNOWN, "server sent no grpc-status")
    known = _CODES.get(grpc_status)
    if known is not None:
        code = known
    else:  # not one of the 17 spelt plainly ("00", " 0", "99"): as grpc, by its number if it has one
        try:
            code = StatusCode(int(grpc_status))
        except ValueError:
            code = StatusCode.UNKNOWN
    if code is not StatusCode.OK:
        return RpcError(code, percent_decode(grpc_message), decode_metadata(trailers), decode_metadata(headers))
    if stream.pending:
        return RpcError(StatusCode.INTERNAL, "response ended in the middle of a message")
    return None
