"""The platform's side of the bridge: reaching the app, and serving the app's proxy.

Inside the grain, ``sandhaven-init`` relays ``app.sock`` to the app's loopback
port and the app's ``HTTP_PROXY`` (127.0.0.1:15239) to ``api.sock``. Both
sockets live in a host directory only the platform can write (the app socket's
listener is handed to the init as a descriptor). Still, the platform never
connects by plain path: :func:`connect_app` opens the name with ``O_PATH |
O_NOFOLLOW``, checks it is a socket, and connects through ``/proc/self/fd/N``, a
second wall against a planted symlink that also lifts the 108-byte limit on
socket paths.

:class:`PlatformApi` answers what the app sends to its proxy: requests for
``http://http-bridge/...`` are platform calls (a JSON 404 until the powerbox
exists), anything else, including CONNECT tunnels, is refused with 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
from pathlib import Path
from urllib.parse import urlsplit

from sandhaven.errors import GrainError

MAX_HEAD = 16 * 1024


def connect_app(path: Path) -> socket.socket:
    """A connected, blocking Unix stream socket to the grain's ``app.sock``.

    Raises GrainError if the name is missing or is not a socket (a symlink
    planted by the grain included), or ConnectionRefusedError/OSError from connect.
    """
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise GrainError(f"Grain socket {path} does not exist.") from None
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            raise GrainError(f"Grain socket {path} is not a socket.")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(f"/proc/self/fd/{fd}")
        except BaseException:
            sock.close()
            raise
        return sock
    finally:
        os.close(fd)


async def open_app_connection(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """:func:`connect_app` as an asyncio stream pair (Unix connect is immediate)."""
    sock = connect_app(path)
    sock.setblocking(False)
    return await asyncio.open_unix_connection(sock=sock)


async def probe_http(path: Path, timeout: float) -> bool:
    """True once the app behind ``path`` answers an HTTP request with a status line.

    False when the socket is missing, refuses, or closes without answering (the
    init closes relayed connections at once while the app's port is not open).
    """
    try:
        reader, writer = await open_app_connection(path)
    except (OSError, GrainError):
        return False
    try:
        writer.write(b"GET / HTTP/1.0\r\nHost: sandbox\r\nUser-Agent: sandhaven-probe\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.read(5), timeout)
        return head == b"HTTP/"
    except (TimeoutError, OSError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class PlatformApi:
    """Serves one grain's ``api.sock``: the far end of the app's HTTP proxy.

    One request per connection (``Connection: close``); heads over 16 KiB are
    refused. ``start()`` / ``close()`` bracket the grain's run.
    """

    def __init__(self, grain_id: str, path: Path) -> None:
        self.grain_id = grain_id
        self.path = path
        self._server: asyncio.AbstractServer | None = None
        self.calls = 0
        self.refused = 0

    async def start(self, mode: int = 0o666) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._handle, path=str(self.path))
        os.chmod(self.path, mode)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            if len(head) > MAX_HEAD:
                await self._reply(writer, 431, {"error": "headers_too_large"})
                return
            method, target = _request_line(head)
            status, body = self.route(method, target)
            await self._reply(writer, status, body)
        except (OSError, ValueError):
            return
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def route(self, method: str, target: str) -> tuple[int, dict[str, str]]:
        """``(status, JSON body)`` for one proxied request line."""
        parts = urlsplit(target)
        if method != "CONNECT" and parts.scheme == "http" and parts.hostname == "http-bridge":
            self.calls += 1
            # TODO(powerbox): session claims and capability calls land here.
            return 404, {
                "error": "not_found",
                "message": f"No platform API at {parts.path or '/'} yet.",
            }
        self.refused += 1
        return 403, {
            "error": "forbidden",
            "message": "A grain can reach only http://http-bridge/ through this proxy.",
        }

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, body: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        reason = {403: "Forbidden", 404: "Not Found", 431: "Request Header Fields Too Large"}
        writer.write(
            f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + data
        )
        await writer.drain()


def _request_line(head: bytes) -> tuple[str, str]:
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise ValueError(f"bad request line {line!r}")
    return parts[0], parts[1]
