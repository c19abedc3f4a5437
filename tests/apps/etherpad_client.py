"""A minimal Etherpad client for tests: socket.io 2 (engine.io protocol 3) over
HTTP long-polling, the transport Etherpad's own pad page falls back to.

It speaks just enough to open a pad and send changes the way a browser does,
or as a crafted request would: ``connect`` (the handshake), ``send`` (one
``message`` event), ``receive`` (the next ``message`` event whose ``type``
matches). Format of polling payloads (``<length>:<packet>…``, packet ``4`` a
message, ``42`` a socket.io event): engine.io-protocol v3 and socket.io-protocol
v4, the versions Etherpad 1.8.14 ships.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

import httpx

POLL = "/socket.io/?EIO=3&transport=polling"


def decode_payload(body: str) -> list[str]:
    """The packets of one polling payload (``12:42["x",1]…``); ValueError if malformed."""
    packets: list[str] = []
    i = 0
    while i < len(body):
        colon = body.index(":", i)
        length = int(body[i:colon])
        packets.append(body[colon + 1:colon + 1 + length])
        i = colon + 1 + length
    return packets


def encode_payload(packets: list[str]) -> str:
    return "".join(f"{len(p)}:{p}" for p in packets)


class PadSocket:
    """One socket.io connection to Etherpad through ``client`` with ``headers``
    (identity and ``Cookie``) on every request."""

    def __init__(self, client: httpx.Client, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers
        self.sid = ""
        self.inbox: deque[dict[str, Any]] = deque()

    def connect(self) -> None:
        answer = self.client.get(POLL, headers=self.headers, timeout=30)
        answer.raise_for_status()
        opening = decode_payload(answer.text)[0]
        assert opening.startswith("0"), opening
        self.sid = json.loads(opening[1:])["sid"]

    def send(self, message: dict[str, Any]) -> None:
        packet = "42" + json.dumps(["message", message])
        answer = self.client.post(f"{POLL}&sid={self.sid}", content=encode_payload([packet]),
                                  headers={**self.headers,
                                           "Content-Type": "text/plain;charset=UTF-8"},
                                  timeout=30)
        assert answer.status_code == 200, answer.text

    def receive(self, *types: str, polls: int = 20) -> dict[str, Any]:
        """The next message whose ``type`` (or ``data.type`` for COLLABROOM) is one
        of ``types``; others are dropped. Each poll waits at most the server's
        ping interval; AssertionError after ``polls`` polls."""
        for _ in range(polls):
            while self.inbox:
                message = self.inbox.popleft()
                kind = message.get("type") or ("accessStatus" if "accessStatus" in message
                                                else None)
                if kind == "COLLABROOM":
                    kind = message.get("data", {}).get("type")
                if kind in types:
                    return message
            answer = self.client.get(f"{POLL}&sid={self.sid}", headers=self.headers,
                                     timeout=40)
            answer.raise_for_status()
            for packet in decode_payload(answer.text):
                if packet.startswith("42"):
                    name, *args = json.loads(packet[2:])
                    if name == "message" and args and isinstance(args[0], dict):
                        self.inbox.append(args[0])
        raise AssertionError(f"no {types} message arrived")

    def open_pad(self, pad_id: str, token: str) -> dict[str, Any]:
        """Sends CLIENT_READY for ``pad_id``; returns the CLIENT_VARS data."""
        self.send({"component": "pad", "type": "CLIENT_READY", "padId": pad_id,
                   "sessionID": None, "token": token, "protocolVersion": 2})
        message = self.receive("CLIENT_VARS", "accessStatus")
        assert message.get("type") == "CLIENT_VARS", message
        return message["data"]

    def append(self, pad_id: str, rev: int, old_length: int, text: str) -> None:
        """Sends a change inserting ``text`` (one line, no newline) at the start of a
        pad of ``old_length`` characters at revision ``rev``."""
        changeset = f"Z:{_b36(old_length)}>{_b36(len(text))}+{_b36(len(text))}${text}"
        self.send({"component": "pad", "type": "COLLABROOM", "padId": pad_id,
                   "data": {"type": "USER_CHANGES", "baseRev": rev, "changeset": changeset,
                            "apool": {"numToAttrib": {}, "nextNum": 0}}})

    def history(self, pad_id: str) -> dict[str, Any]:
        """Asks for the pad's changesets from revision 0 (allowed to viewers too)."""
        self.send({"component": "pad", "type": "CHANGESET_REQ", "padId": pad_id,
                   "data": {"start": 0, "granularity": 1, "requestID": 1}})
        return self.receive("CHANGESET_REQ")


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out
