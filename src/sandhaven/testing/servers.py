"""Real servers for tests: the test grain (:mod:`.http_grain`) on a real Unix socket
and the gateway (:mod:`.gateway_server`) under a real uvicorn on a free loopback
port, each in its own process, as context managers.

Listening sockets are bound here and handed to the child (``--fd``), so there
is no free-port race and no readiness polling: a connection made before the
child runs waits in the kernel's backlog until the server accepts it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from sandhaven.testing.gateway_server import command


@dataclass
class Grain:
    """A running test grain: its socket and its process (:meth:`kill` = crash)."""

    socket_path: str
    proc: subprocess.Popen[bytes]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


@dataclass
class Gateway:
    """A running gateway on ``127.0.0.1:port`` with ``localhost:port`` as shell host."""

    port: int
    proc: subprocess.Popen[bytes]

    @property
    def session_host(self) -> str:
        return f"ui-{'3f' * 16}.localhost:{self.port}"

    @property
    def api_host(self) -> str:
        return f"api.localhost:{self.port}"

    @property
    def shell_host(self) -> str:
        return f"localhost:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(
        self, host: str | None = None, *, granted: bool = True, **kwargs: object
    ) -> httpx.Client:
        """An httpx client to the gateway whose requests carry ``Host: host`` (the
        session host by default) and, if ``granted``, the fake resolver's cookie."""
        headers = {"Host": host or self.session_host}
        if granted:
            headers["Cookie"] = "sandhaven_test=granted"
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def run_grain(directory: Path) -> Iterator[Grain]:
    """Start a test grain on a fresh socket in ``directory``; stopped on exit."""
    path = str(directory / f"grain-{secrets.token_hex(4)}.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1024)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandhaven.testing.http_grain", "--fd", str(listener.fileno())],
        pass_fds=[listener.fileno()],
    )
    # The child holds the socket now; keeping the parent's copy would let
    # connections queue forever after the child dies.
    listener.close()
    try:
        yield Grain(path, proc)
    finally:
        _stop(proc)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@contextlib.contextmanager
def run_gateway(socket_path: str, *extra: str) -> Iterator[Gateway]:
    """Start a gateway whose fake resolver sends everything to ``socket_path``;
    ``extra`` are more ``gateway_server`` flags. Yields once it has answered."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    port = listener.getsockname()[1]
    proc = subprocess.Popen(command(listener.fileno(), socket_path, port, *extra),
                            pass_fds=[listener.fileno()])
    listener.close()
    try:
        gateway = Gateway(port, proc)
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            # Readiness: the first answer from the shell host.
            assert client.get("/", headers={"Host": gateway.shell_host}).text == "shell\n"
        yield gateway
    finally:
        _stop(proc)
