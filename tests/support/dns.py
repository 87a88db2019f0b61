"""A name resolver for the egress guard whose answers a test scripts, and changes."""

from __future__ import annotations

import ipaddress
import socket
from collections import deque

from service.addresses import IPAddress


class FakeDns:
    """Answers each name with its scripted addresses: the first answer until a later one is
    queued, each queued answer once in turn, the last one from then on. A name with no script
    does not resolve."""

    def __init__(self, **names: str | list[str]) -> None:
        self.answers: dict[str, deque[list[IPAddress]]] = {}
        self.lookups: list[str] = []
        for name, answer in names.items():
            self.answer(name.replace("_", "."), answer)

    def answer(self, name: str, *answers: str | list[str]) -> None:
        """Queues the answers `name` gets from now on, in order; the last one sticks."""
        queue = self.answers.setdefault(name, deque())
        for answer in answers:
            listed = [answer] if isinstance(answer, str) else answer
            queue.append([ipaddress.ip_address(address) for address in listed])

    async def __call__(self, host: str, port: int, family: int = 0) -> list[IPAddress]:
        self.lookups.append(host)
        queue = self.answers.get(host)
        if not queue:
            raise socket.gaierror(f"{host} does not resolve here")
        return queue.popleft() if len(queue) > 1 else queue[0]
