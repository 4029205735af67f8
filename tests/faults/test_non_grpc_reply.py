"""A non-gRPC request's plain-HTTP answer (415) obeys flow control like any other data."""

from __future__ import annotations

import asyncio

from hyperframe.frame import DataFrame, SettingsFrame, WindowUpdateFrame

from app.greeter.service import Greeter
from tests.faults.rawclient import PREFACE, RawH2Client, request_headers
from transport import Server


async def test_415_body_is_sent_as_the_client_window_opens() -> None:
    """With an 8-byte stream window the 415 body arrives 8 bytes at a time, and all of it once the window
    opens, ending the stream (it used to be dropped and the stream left open forever)."""
    server = Server(name="http")
    server.add_service(Greeter())
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    client = RawH2Client(reader, writer)
    try:
        client.send(PREFACE + SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 8}).serialize())
        headers = [(k, v) for k, v in request_headers(b"/") if k != b"content-type"]
        client.send_headers(1, [*headers, (b"content-type", b"text/plain")], end_stream=True)
        await client.read_idle(0.2)
        first = b"".join(f.data for f in client.received if isinstance(f, DataFrame))
        assert len(first) == 8
        client.send(WindowUpdateFrame(1, window_increment=4096).serialize())
        result = await client.stream_result(1, timeout=5)
        assert result.http_status == 415
        assert result.ended
        body = result.body
        assert body.startswith(b"Unsupported Media Type")
        assert int(result.headers[b"content-length"]) == len(body)
    finally:
        client.abort()
        await server.stop(grace=0.5)
