"""The physical limit under a fan-out pass: one frame written to each of N loopback sockets.

A pass of the node's sender is at least one ``write`` system call per subscriber; nothing in
Python can make it cheaper than those calls alone. This measures them with nothing else around:
plain sockets, ``os.write`` in a tight loop, receivers that do not wake up (they never read, and
the few kilobytes of all rounds fit in the socket buffers), so it is a floor, measured in the same
run as the node's figures.

The receiving ends live in a child process (``python -m breakwater.bench._raw_sends PORT N``),
as the subscribers do in the real benchmark: one process holding both ends of 10,000 sockets
would need 20,000 descriptors, past what a process may open here.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time

from breakwater.bench.descriptors import require_descriptors
from breakwater.bench.stats import median


def raw_send_round_ms(connections: int, payload_bytes: int = 256, rounds: int = 20) -> float:
    """The median milliseconds of one round of writes of a text frame to ``connections``
    loopback TCP sockets."""
    require_descriptors(connections, "the raw-send baseline")
    frame = struct.pack("!BBH", 0x81, 126, payload_bytes) + b"x" * payload_bytes
    senders: list[socket.socket] = []
    with (
        socket.create_server(("127.0.0.1", 0), backlog=1024) as listener,
        subprocess.Popen(
            [sys.executable, "-m", __name__, str(listener.getsockname()[1]), str(connections)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        ) as receivers,
    ):
        assert receivers.stdin is not None and receivers.stdout is not None
        try:
            for _ in range(connections):
                sender, _ = listener.accept()
                sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                senders.append(sender)
            if receivers.stdout.readline().strip() != b"ready":
                raise RuntimeError("the raw-send receivers did not connect")
            descriptors = [sender.fileno() for sender in senders]
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                for descriptor in descriptors:
                    os.write(descriptor, frame)
                times.append(time.perf_counter() - started)
            return median(times) * 1000
        finally:
            for sock in senders:
                sock.close()
            receivers.stdin.close()  # the child's cue to close its ends and exit


def _hold_receivers(port: int, connections: int) -> None:
    """Connect ``connections`` times, say ``ready``, and hold the sockets until stdin closes."""
    require_descriptors(connections, "the raw-send receivers")
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.read()
    for sock in held:
        sock.close()


if __name__ == "__main__":
    _hold_receivers(int(sys.argv[1]), int(sys.argv[2]))
