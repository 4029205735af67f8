"""The ceiling: the h2 state machine alone, for one unary gRPC exchange, no sockets.

Two ``H2Connection``s (configured like ``transport.http2.H2Protocol``: inbound validation on, outbound off)
are driven against each other in memory. One iteration is one call: client HEADERS + DATA(end), server
receives and acknowledges the data, sends HEADERS + DATA + trailers(end), client receives and acknowledges.
No asyncio, no protobuf, no syscalls: what any framework built on h2 must spend at least.
``python -m bench.h2_ceiling [--calls N]`` prints one JSON line with CPU µs per call on each side.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from typing import Any

import h2.config
import h2.events
from h2.connection import H2Connection

# A 5-byte gRPC frame prefix + a protobuf HelloRequest / HelloReply, as bytes.
REQUEST = b"\x00\x00\x00\x00\x07\n\x05world"
REPLY = b"\x00\x00\x00\x00\x0f\n\rHello, world!"
REQUEST_HEADERS = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":authority", b"127.0.0.1:50051"),
    (b":path", b"/helloworld.Greeter/SayHello"),
    (b"te", b"trailers"),
    (b"content-type", b"application/grpc"),
    (b"user-agent", b"rpcviz-bench"),
]
RESPONSE_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0")]
WINDOW = 1024 * 1024


def _connection(client_side: bool) -> H2Connection:
    config = h2.config.H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=True,
        normalize_inbound_headers=True,
    )
    conn = H2Connection(config=config)
    conn.initiate_connection()
    conn.increment_flow_control_window(WINDOW - 65535)
    return conn


def _ack(conn: H2Connection, events: list[Any]) -> int:
    """Credit received DATA back (as every framework must); return the count of stream ends seen."""
    ended = 0
    for event in events:
        if isinstance(event, h2.events.DataReceived) and event.flow_controlled_length:
            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            ended += 1
    return ended


def run(calls: int) -> dict[str, Any]:
    """``calls`` exchanges (after a warm-up); CPU µs per call for each side, timed separately."""
    client, server = _connection(True), _connection(False)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    clock = time.perf_counter_ns
    client_ns = server_ns = 0
    warmup = min(1000, calls)
    gc.collect()
    cpu0 = time.process_time()
    for i in range(warmup + calls):
        if i == warmup:
            client_ns = server_ns = 0
            cpu0 = time.process_time()
        t0 = clock()
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, REQUEST_HEADERS)
        client.send_data(sid, REQUEST, end_stream=True)
        wire = client.data_to_send()
        t1 = clock()
        events = server.receive_data(wire)
        if _ack(server, events) != 1:
            raise RuntimeError("the server did not see the request end")
        server.send_headers(sid, RESPONSE_HEADERS)
        server.send_data(sid, REPLY)
        server.send_headers(sid, TRAILERS, end_stream=True)
        wire = server.data_to_send()
        t2 = clock()
        if _ack(client, client.receive_data(wire)) != 1:
            raise RuntimeError("the client did not see the response end")
        t3 = clock()
        client_ns += (t1 - t0) + (t3 - t2)
        server_ns += t2 - t1
    cpu = time.process_time() - cpu0
    return {
        "calls": calls,
        "client_cpu_us": client_ns / calls / 1000,
        "server_cpu_us": server_ns / calls / 1000,
        "total_cpu_us": cpu / calls * 1e6,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.calls)), flush=True)


if __name__ == "__main__":
    main()
