"""The physical limit under a fan-out pass: one frame written to each of N loopback sockets.

A pass of the node's sender is at least one ``write`` system call per subscriber; nothing in
Python can make it cheaper than those calls alone. This measures them with nothing else around:
plain sockets, ``os.write`` in a tight loop, receivers that do not wake up (they never read, and
the few kilobytes of all rounds fit in the socket buffers), so it is a floor, measured in the same
run as the node's figures.
"""

from __future__ import annotations

import os
import socket
import struct
import time

from breakwater.bench.stats import median


def raw_send_round_ms(connections: int, payload_bytes: int = 256, rounds: int = 20) -> float:
    """The median milliseconds of one round of writes of a text frame to ``connections``
    loopback TCP sockets."""
    frame = struct.pack("!BBH", 0x81, 126, payload_bytes) + b"x" * payload_bytes
    opened: list[socket.socket] = []
    senders: list[socket.socket] = []
    with socket.create_server(("127.0.0.1", 0), backlog=128) as listener:
        port = listener.getsockname()[1]
        try:
            for _ in range(connections):
                opened.append(socket.create_connection(("127.0.0.1", port)))
                sender, _ = listener.accept()
                sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                opened.append(sender)
                senders.append(sender)
            descriptors = [sender.fileno() for sender in senders]
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                for descriptor in descriptors:
                    os.write(descriptor, frame)
                times.append(time.perf_counter() - started)
            return median(times) * 1000
        finally:
            for sock in opened:
                sock.close()
