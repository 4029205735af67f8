"""gRPC status codes and the one error type every failed call raises."""

from __future__ import annotations

import enum

from h2.errors import ErrorCodes

from transport.metadata import Metadata


class StatusCode(enum.IntEnum):
    """The 17 gRPC status codes, numbered as on the wire (``grpc-status``)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class RpcError(Exception):
    """A call that ended with a status other than OK.

    Raised by the client for every failed call, and by a server handler (or
    :meth:`ServicerContext.abort`) to end its call with this status.
    """

    def __init__(
        self,
        code: StatusCode,
        details: str = "",
        trailing_metadata: Metadata = (),
        initial_metadata: Metadata = (),
    ) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata
        self.initial_metadata = initial_metadata

    def __str__(self) -> str:
        return f"{self.code.name}: {self.details}" if self.details else self.code.name

    def __repr__(self) -> str:
        return f"RpcError({self.code.name}, {self.details!r})"


_HTTP_TO_STATUS = {
    400: StatusCode.INTERNAL,
    401: StatusCode.UNAUTHENTICATED,
    403: StatusCode.PERMISSION_DENIED,
    404: StatusCode.UNIMPLEMENTED,
    429: StatusCode.UNAVAILABLE,
    502: StatusCode.UNAVAILABLE,
    503: StatusCode.UNAVAILABLE,
    504: StatusCode.UNAVAILABLE,
}


def status_from_http(http_status: int) -> StatusCode:
    """The status gRPC synthesizes for a non-200 HTTP response."""
    return _HTTP_TO_STATUS.get(http_status, StatusCode.UNKNOWN)


_RST_TO_STATUS = {
    ErrorCodes.CANCEL: StatusCode.CANCELLED,
    ErrorCodes.REFUSED_STREAM: StatusCode.UNAVAILABLE,
    ErrorCodes.ENHANCE_YOUR_CALM: StatusCode.RESOURCE_EXHAUSTED,
    ErrorCodes.INADEQUATE_SECURITY: StatusCode.PERMISSION_DENIED,
}


def status_from_rst(error_code: int) -> StatusCode:
    """The status a client reports for a stream the server reset."""
    for rst, status in _RST_TO_STATUS.items():
        if rst == error_code:
            return status
    return StatusCode.INTERNAL
