"""A deliberately dumb HTTP/2 client for fault tests: hand-built frames out, parsed frames in.

It keeps no stream state and validates nothing it sends, so a test can send
exactly the malformed bytes it wants. Inbound frames are parsed with
hyperframe and header blocks decoded with one hpack Decoder (in order, so the
dynamic table stays in step). Every read is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field

import hpack
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GRPC_CONTENT_TYPE = b"application/grpc"


def frame_header(length: int, type_: int, flags: int, stream_id: int) -> bytes:
    """A raw 9-byte frame header (lets a test lie about the length)."""
    return length.to_bytes(3, "big") + bytes((type_, flags)) + (stream_id & 0x7FFFFFFF).to_bytes(4, "big")


def grpc_message(payload: bytes, flag: int = 0, length: int | None = None) -> bytes:
    """A length-prefixed message; ``length`` overrides the announced length."""
    n = len(payload) if length is None else length
    return bytes((flag,)) + n.to_bytes(4, "big") + payload


def request_headers(
    path: bytes = b"/test.Faults/Echo",
    *,
    authority: bytes = b"127.0.0.1",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> list[tuple[bytes, bytes]]:
    return [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", path),
        (b":authority", authority),
        (b"content-type", GRPC_CONTENT_TYPE),
        (b"te", b"trailers"),
        *(extra or []),
    ]


@dataclass
class StreamResult:
    """What came back on one stream."""

    header_blocks: list[list[tuple[bytes, bytes]]] = field(default_factory=list)
    body: bytes = b""
    ended: bool = False
    rst_code: int | None = None
    goaway: GoAwayFrame | None = None
    eof: bool = False

    def _merged(self, block: int) -> dict[bytes, bytes]:
        if len(self.header_blocks) <= block:
            return {}
        return dict(self.header_blocks[block])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return self._merged(0)

    @property
    def trailers(self) -> dict[bytes, bytes]:
        """Trailers, or the single block of a Trailers-Only response."""
        return self._merged(len(self.header_blocks) - 1) if self.header_blocks else {}

    @property
    def http_status(self) -> int | None:
        value = self.headers.get(b":status")
        return int(value) if value is not None else None

    @property
    def grpc_status(self) -> int | None:
        value = self.trailers.get(b"grpc-status")
        return int(value) if value is not None else None

    @property
    def grpc_message(self) -> str:
        return self.trailers.get(b"grpc-message", b"").decode("utf-8", "replace")


class RawH2Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder(max_header_list_size=1 << 20)
        # A fuzz case may advertise any SETTINGS_HEADER_TABLE_SIZE; accept what the server then uses.
        self.decoder.max_allowed_table_size = 1 << 32
        self.received: list[Frame] = []
        self.eof = False
        self._header_buffer: list[Frame] = []
        #: ACK the server's SETTINGS (only once we have sent a preface ourselves).
        self.ack_settings = True

    @classmethod
    async def connect(cls, port: int, *, preface: bool = True, settings: bool = True) -> RawH2Client:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
        client = cls(reader, writer)
        client.ack_settings = preface
        out = b""
        if preface:
            out += PREFACE
        if settings:
            out += SettingsFrame(0).serialize()
            # A big connection window so the server never blocks on us.
            out += WindowUpdateFrame(0, window_increment=1 << 24).serialize()
        if out:
            client.send(out)
        return client

    # --- sending --------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def drain(self) -> None:
        await asyncio.wait_for(self.writer.drain(), 5)

    def encode_headers(self, headers: list[tuple[bytes, bytes]], stream_id: int, end_stream: bool) -> bytes:
        block = self.encoder.encode(headers)
        chunks = [block[i : i + 16384] for i in range(0, len(block), 16384)] or [b""]
        out = b""
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            if i == 0:
                f: Frame = HeadersFrame(stream_id, data=chunk)
                if end_stream:
                    f.flags.add("END_STREAM")
            else:
                f = ContinuationFrame(stream_id, data=chunk)
            if last:
                f.flags.add("END_HEADERS")
            out += f.serialize()
        return out

    def send_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]], end_stream: bool = False) -> None:
        self.send(self.encode_headers(headers, stream_id, end_stream))

    @staticmethod
    def encode_data(stream_id: int, data: bytes, end_stream: bool = False) -> bytes:
        f = DataFrame(stream_id, data=data)
        if end_stream:
            f.flags.add("END_STREAM")
        return f.serialize()

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self.send(self.encode_data(stream_id, data, end_stream))

    @staticmethod
    def encode_rst(stream_id: int, code: int) -> bytes:
        return RstStreamFrame(stream_id, error_code=code).serialize()

    def send_rst(self, stream_id: int, code: int) -> None:
        self.send(self.encode_rst(stream_id, code))

    def send_request(self, stream_id: int, path: bytes, payload: bytes, **kw: object) -> None:
        self.send_headers(stream_id, request_headers(path, **kw))  # type: ignore[arg-type]
        self.send_data(stream_id, grpc_message(payload), end_stream=True)

    # --- receiving ------------------------------------------------------------------

    async def read_frame(self, timeout: float = 2.0) -> Frame | None:
        """The next frame; None at EOF (or a reset connection). TimeoutError if none in time."""
        try:
            header = await asyncio.wait_for(self.reader.readexactly(9), timeout)
            frame, length = Frame.parse_frame_header(memoryview(header), strict=False)
            body = await asyncio.wait_for(self.reader.readexactly(length), timeout) if length else b""
        except (asyncio.IncompleteReadError, ConnectionError):
            self.eof = True
            return None
        frame.parse_body(memoryview(body))
        if isinstance(frame, (HeadersFrame, ContinuationFrame)):
            self._header_buffer.append(frame)
            if "END_HEADERS" in frame.flags:
                block = b"".join(f.data for f in self._header_buffer)
                first = self._header_buffer[0]
                self._header_buffer = []
                first.decoded = self.decoder.decode(block, raw=True)  # type: ignore[attr-defined]
        if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags and self.ack_settings:
            with contextlib.suppress(Exception):
                self.send(SettingsFrame(0, flags=["ACK"]).serialize())
        self.received.append(frame)
        return frame

    async def read_until_closed(self, timeout: float = 2.0) -> list[Frame]:
        """Read every frame until EOF; TimeoutError if the server keeps the socket open."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        frames = []
        while True:
            left = end - loop.time()
            if left <= 0:
                raise TimeoutError("connection still open")
            frame = await self.read_frame(left)
            if frame is None:
                return frames
            frames.append(frame)

    async def stream_result(self, stream_id: int, timeout: float = 2.0) -> StreamResult:
        """Frames for ``stream_id`` until it ends (END_STREAM, RST_STREAM, GOAWAY or EOF)."""
        result = StreamResult()
        # Frames already read (e.g. while waiting for another stream) count too.
        for frame in [f for f in self.received if getattr(f, "stream_id", None) == stream_id]:
            if self._apply(result, frame):
                return result
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            left = end - loop.time()
            if left <= 0:
                raise TimeoutError(f"stream {stream_id} did not end within {timeout}s")
            frame = await self.read_frame(left)
            if frame is None:
                result.eof = True
                return result
            if isinstance(frame, GoAwayFrame):
                result.goaway = frame
                if frame.last_stream_id < stream_id:
                    return result
                continue
            if frame.stream_id == stream_id and self._apply(result, frame):
                return result

    @staticmethod
    def _apply(result: StreamResult, frame: Frame) -> bool:
        if isinstance(frame, HeadersFrame) and hasattr(frame, "decoded"):
            result.header_blocks.append(list(frame.decoded))
        elif isinstance(frame, DataFrame):
            result.body += frame.data
        elif isinstance(frame, RstStreamFrame):
            result.rst_code = frame.error_code
            return True
        if isinstance(frame, (HeadersFrame, DataFrame)) and "END_STREAM" in frame.flags:
            result.ended = True
            # A RST_STREAM(NO_ERROR) may follow; it does not change the answer.
            return True
        return False

    async def read_idle(self, quiet: float = 0.1) -> list[Frame]:
        """Read frames until none arrives for ``quiet`` seconds (or EOF)."""
        frames = []
        while True:
            try:
                frame = await self.read_frame(quiet)
            except TimeoutError:
                return frames
            if frame is None:
                return frames
            frames.append(frame)

    def goaways(self) -> list[GoAwayFrame]:
        return [f for f in self.received if isinstance(f, GoAwayFrame)]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.transport.abort()


async def open_flood_socket(port: int, *, rcvbuf: int = 4096) -> socket.socket:
    """A connected non-blocking socket that has sent the preface and SETTINGS, for a client that
    writes and never reads: its small receive buffer makes the server's answers back up at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: sets the window scale
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), 2)
        await asyncio.wait_for(loop.sock_sendall(sock, PREFACE + SettingsFrame(0).serialize()), 2)
    except BaseException:
        sock.close()
        raise
    return sock


async def read_socket_frames(sock: socket.socket, timeout: float = 5.0) -> tuple[list[Frame], bool]:
    """Read and parse frames from ``sock`` until EOF or a reset (True) or ``timeout`` seconds pass (False)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    data = bytearray()
    closed = False
    while True:
        left = end - loop.time()
        if left <= 0:
            break
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), left)
        except TimeoutError:
            break
        except ConnectionError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
    frames: list[Frame] = []
    view = memoryview(bytes(data))
    while len(view) >= 9:
        frame, length = Frame.parse_frame_header(view[:9], strict=False)
        if len(view) < 9 + length:
            break
        frame.parse_body(view[9 : 9 + length])
        frames.append(frame)
        view = view[9 + length :]
    return frames, closed
