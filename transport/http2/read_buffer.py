"""The receive buffer every HTTP/2 connection on an event loop reads into: one per loop, not one per connection.

A buffer per connection (64 KiB, allocated up front) was most of what an idle connection cost: ≈ 88 KB
each, 88 MB for 1,000 connections that mostly wait. Sharing one per loop is safe because:

- asyncio hands the buffer out (``get_buffer``) and reports what it read into it (``buffer_updated``) in
  one callback, with nothing in between, on every path: the selector socket transport
  (``_read_ready__get_buffer``), the SSL protocol (``_do_read__buffered``), the proactor
  (``_feed_data_to_buffered_proto``) and uvloop (libuv's alloc and read callbacks, back to back);
- a loop runs one callback at a time, and a loop belongs to one thread;
- ``H2Protocol.buffer_updated`` hands a view of what was read to ``data_received``, whose first step
  copies it into the connection's frame buffer (h2's ``add_data``), and releases the view when it
  returns: nothing refers to the buffer once that callback is over. Whatever reads it must keep it
  so: never hold a view of it past the callback.

The L4 proxy (``transport.proxy.l4``) relays through a buffer of its own by the same argument; the L7
proxy's connections are H2Protocols and read into this one.
"""

from __future__ import annotations

import asyncio
import weakref

#: Bytes read from the socket at most per read: the size of the receive buffer.
READ_BUFFER_SIZE = 64 * 1024

_BUFFERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, memoryview] = weakref.WeakKeyDictionary()


def shared_read_buffer(loop: asyncio.AbstractEventLoop) -> memoryview:
    """The receive buffer of ``loop``, made on first use."""
    buffer = _BUFFERS.get(loop)
    if buffer is None:
        buffer = _BUFFERS[loop] = memoryview(bytearray(READ_BUFFER_SIZE))
    return buffer
