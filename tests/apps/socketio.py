"""A small Socket.IO 1.x client (Engine.IO protocol 3) for talking to an app's
socket directly through a grain's Unix socket, on either transport.

EtherCalc's server is socket.io 1.0: an Engine.IO connection opens with a ``0``
packet (JSON with the session ID), the default namespace with ``40``, and events
travel as ``42["name", data]``. Long-polling carries packets as a text payload
``<length>:<packet>…`` when asked with ``b64=1``. Source: the Engine.IO protocol
(github.com/socketio/engine.io-protocol, revision 3) and socket.io-parser 2.x.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, unix_connect

PATH = "/socket.io/"


def event_of(packet: str) -> tuple[str, Any] | None:
    """``(name, data)`` of an event packet ``42[...]``; None for other packets."""
    if not packet.startswith("42"):
        return None
    name, *args = json.loads(packet[2:])
    return name, (args[0] if args else None)


def encode_payload(packets: list[str]) -> str:
    """Engine.IO 3 text payload: each packet as ``<length>:<packet>``."""
    return "".join(f"{len(p)}:{p}" for p in packets)


def decode_payload(payload: str) -> list[str]:
    """The packets of an Engine.IO 3 text payload; ValueError when malformed."""
    packets, at = [], 0
    while at < len(payload):
        length = re.match(r"(\d+):", payload[at:])
        if length is None:
            raise ValueError(f"bad Engine.IO payload at {at}: {payload[at:at + 20]!r}")
        start = at + length.end()
        packets.append(payload[start:start + int(length.group(1))])
        at = start + int(length.group(1))
    return packets


class WebSocketClient:
    """One Socket.IO connection over the WebSocket transport, opened straight away
    (no polling first), with the given request headers (the identity headers the
    gateway would add)."""

    def __init__(self, sock: Path, headers: dict[str, str]) -> None:
        self._connecting = unix_connect(
            str(sock), f"ws://sandbox{PATH}?EIO=3&transport=websocket",
            additional_headers=headers, open_timeout=10)
        self.ws: ClientConnection = self._connecting.__enter__()
        opened = self.ws.recv(timeout=10)
        assert isinstance(opened, str) and opened.startswith("0"), opened

    def emit(self, name: str, data: Any) -> None:
        self.ws.send("42" + json.dumps([name, data]))

    def wait_for(self, match: Callable[[str, Any], bool], timeout: float = 10) -> Any:
        """The data of the first event for which ``match(name, data)`` holds;
        TimeoutError when none comes within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching Socket.IO event")
            packet = self.ws.recv(timeout=left)
            event = event_of(packet) if isinstance(packet, str) else None
            if event is not None and match(*event):
                return event[1]

    def close(self) -> None:
        self._connecting.__exit__(None, None, None)

    def __enter__(self) -> WebSocketClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PollingClient:
    """One Socket.IO connection over the long-polling transport, every request
    with the given headers."""

    def __init__(self, http: httpx.Client, headers: dict[str, str]) -> None:
        self.http, self.headers = http, headers
        opened = self._get(params={})
        self.sid = json.loads(opened[0][1:])["sid"]

    def _get(self, params: dict[str, str]) -> list[str]:
        answer = self.http.get(PATH, params={"EIO": "3", "transport": "polling", "b64": "1",
                                             **params}, headers=self.headers, timeout=40)
        answer.raise_for_status()
        return decode_payload(answer.text)

    def emit(self, name: str, data: Any) -> httpx.Response:
        return self.http.post(
            PATH, params={"EIO": "3", "transport": "polling", "b64": "1", "sid": self.sid},
            content=encode_payload(["42" + json.dumps([name, data])]),
            headers={**self.headers, "Content-Type": "text/plain;charset=UTF-8"})

    def wait_for(self, match: Callable[[str, Any], bool], timeout: float = 10) -> Any:
        """Polls until an event for which ``match(name, data)`` holds; its data."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for packet in self._get(params={"sid": self.sid}):
                event = event_of(packet)
                if event is not None and match(*event):
                    return event[1]
        raise TimeoutError("no matching Socket.IO event")
