"""Ports for the processes the tools and tests start come from below the ephemeral range (where
no outgoing connection's local end can take them before the process binds), distinct, free."""

from __future__ import annotations

import random
import socket

from breakwater.chaos.ports import PortPicker, _ephemeral_low


class _Scripted(random.Random):
    """Hands out ``ports`` in turn as its random integers."""

    def __init__(self, ports: list[int]) -> None:
        super().__init__(0)
        self.ports = ports

    def randint(self, a: int, b: int) -> int:
        return self.ports.pop(0)


def test_ports_are_free_distinct_and_below_the_ephemeral_range() -> None:
    pick = PortPicker()
    ports = [pick() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(10_000 <= port < _ephemeral_low() for port in ports)


def test_a_port_something_listens_on_or_given_before_is_skipped() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        other = PortPicker()
        given, free = other(), other()
        pick = PortPicker(_Scripted([busy, given, free]))
        pick.taken.add(given)
        assert pick() == free
