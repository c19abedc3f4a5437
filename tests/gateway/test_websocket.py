"""WebSocket relay end to end: real browser-side client, gateway and grain processes."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from sandhaven.testing.servers import Gateway, run_gateway


def open_ws(
    gateway: Gateway,
    *,
    granted: bool = True,
    host: str | None = None,
    subprotocols: list[str] | None = None,
) -> ClientConnection:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=60)
    headers = {"Cookie": "sandhaven_test=granted"} if granted else {}
    return connect(
        f"ws://{host or gateway.session_host}/ws",
        sock=sock,
        additional_headers=headers,
        max_size=64 << 20,
        open_timeout=30,
        close_timeout=30,
        subprotocols=subprotocols,  # type: ignore[arg-type]
    )


def test_text_and_binary_echo(gateway: Gateway) -> None:
    with open_ws(gateway) as ws:
        ws.send("héllo")
        assert ws.recv(timeout=30) == "héllo"
        ws.send(b"\x00\x01\xff")
        assert ws.recv(timeout=30) == b"\x00\x01\xff"


def test_16_mib_binary_message(gateway: Gateway) -> None:
    payload = os.urandom(16 << 20)
    with open_ws(gateway) as ws:
        ws.send(payload)
        assert ws.recv(timeout=60) == payload


def test_ping_is_answered(gateway: Gateway) -> None:
    with open_ws(gateway) as ws:
        assert ws.ping(b"are you there").wait(30)
        ws.send("still relaying")
        assert ws.recv(timeout=30) == "still relaying"


def test_close_code_from_grain_reaches_browser(gateway: Gateway) -> None:
    with open_ws(gateway) as ws:
        ws.send("close:4001")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=30)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 4001
    assert info.value.rcvd.reason == "bye"


def test_close_code_from_browser_reaches_grain(gateway: Gateway) -> None:
    with open_ws(gateway) as ws:
        ws.send("x")
        assert ws.recv(timeout=30) == "x"
        ws.close(code=4002, reason="done")
    assert ws.close_code == 4002
    with gateway.client() as c:
        # The gateway relays the close after answering it; wait on its effect, bounded.
        for _ in range(500):
            if [4002, "done"] in c.get("/ws-closes").json():
                break
        assert [4002, "done"] in c.get("/ws-closes").json()


def test_subprotocol_negotiated(gateway: Gateway) -> None:
    with open_ws(gateway, subprotocols=["chat.v2", "chat.v1"]) as ws:
        assert ws.subprotocol == "chat.v2"


def test_no_grant_refuses_handshake(gateway: Gateway) -> None:
    with pytest.raises(InvalidStatus) as info:
        open_ws(gateway, granted=False)
    assert info.value.response.status_code == 403


def test_websocket_counts_as_activity(gateway: Gateway) -> None:
    import httpx

    def streams() -> dict[str, int]:
        with httpx.Client(base_url=gateway.url, headers={"Host": gateway.shell_host}) as c:
            return c.get("/activity").json()["streams"]

    with open_ws(gateway) as ws:
        ws.send("a")
        assert ws.recv(timeout=30) == "a"
        assert streams() == {"grain-1": 1}
    # The gateway notices the close asynchronously; wait on its effect, bounded.
    for _ in range(200):
        if streams() == {}:
            break
        with open_ws(gateway) as probe:  # a full round trip through the gateway
            probe.send("p")
            probe.recv(timeout=30)
    assert streams() == {}


def test_grain_down_refuses_handshake_with_502(tmp_path: Path) -> None:
    with run_gateway(str(tmp_path / "none.sock")) as gateway:
        with pytest.raises(InvalidStatus) as info:
            open_ws(gateway)
    assert info.value.response.status_code == 502
    assert b"none.sock" not in (info.value.response.body or b"")
