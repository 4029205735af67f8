"""HTTP/2 for gRPC: h2's state machine (:mod:`.connection`) driven by one asyncio protocol per socket (:mod:`.protocol`)."""

from transport.http2.connection import (
    EnhanceYourCalm,
    GrpcH2Connection,
    HeaderBlockStarted,
    HeaderListTooLarge,
    MalformedRequest,
    StreamRefused,
)
from transport.http2.fast_receive import StreamData
from transport.http2.flood_guard import FloodGuard, HeaderBlockTimer
from transport.http2.protocol import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_HEADER_LIST_SIZE,
    DEFAULT_WINDOW_SIZE,
    ConnectionClosed,
    H2Protocol,
)
from transport.http2.unary_receive import UnaryRequest, UnaryResponse

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_HEADER_LIST_SIZE",
    "DEFAULT_WINDOW_SIZE",
    "ConnectionClosed",
    "EnhanceYourCalm",
    "FloodGuard",
    "GrpcH2Connection",
    "H2Protocol",
    "HeaderBlockStarted",
    "HeaderBlockTimer",
    "HeaderListTooLarge",
    "MalformedRequest",
    "StreamData",
    "StreamRefused",
    "UnaryRequest",
    "UnaryResponse",
]
