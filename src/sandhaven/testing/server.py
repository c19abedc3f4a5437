"""Test helpers for Sandhaven and for app packagers: a real SMTP server that keeps
what it receives, a real ``sandhaven serve`` on a free port, and small helpers for
driving the shell's forms.

Nothing here is a mock: the SMTP server is aiosmtpd on loopback and the server is
the real command in a subprocess, ready when it says it listens.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of the call."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Mailbox:
    """Messages an :func:`smtp_server` received, with a wait for the next one."""

    messages: list[Message] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def add(self, raw: bytes) -> None:
        with self._cond:
            self.messages.append(message_from_bytes(raw))
            self._cond.notify_all()

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[Message]:
        """Block until at least ``count`` messages arrived; raises TimeoutError."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= count, timeout):
                raise TimeoutError(f"expected {count} mail(s), got {len(self.messages)}")
            return list(self.messages)

    def last_to(self, address: str) -> Message:
        for msg in reversed(self.messages):
            if msg["To"] == address:
                return msg
        raise LookupError(f"no mail to {address}")


def mail_text(msg: Message) -> str:
    body = msg.get_body(preferencelist=("plain",)) if hasattr(msg, "get_body") else None
    payload = (body or msg).get_payload(decode=True)
    return payload.decode("utf-8") if isinstance(payload, bytes) else str(payload)


def login_link(msg: Message) -> str:
    """The login/sign-up link in a login mail."""
    found = re.search(r"(https?://\S+/login/verify\?token=\S+)", mail_text(msg))
    if not found:
        raise LookupError("no login link in mail")
    return found.group(1)


def login_code(msg: Message) -> str:
    found = re.search(r"code on the login page: (\S+)", mail_text(msg))
    if not found:
        raise LookupError("no login code in mail")
    return found.group(1)


@contextmanager
def smtp_server() -> Iterator[tuple[int, Mailbox]]:
    """A real SMTP server (aiosmtpd) on a free loopback port. Yields (port, mailbox)."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
            mailbox.add(envelope.original_content or envelope.content)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, mailbox
    finally:
        controller.stop()


@dataclass
class LiveServer:
    """A running ``sandhaven serve``: its process, URL, data dir and what it printed."""

    process: subprocess.Popen[str]
    port: int
    data_dir: Path
    stdout_lines: list[str]
    stderr_lines: list[str] = field(default_factory=list)

    @property
    def stderr(self) -> str:
        """What the server wrote to standard error so far (its log)."""
        return "".join(self.stderr_lines)

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def client(self, **kwargs) -> httpx.Client:  # type: ignore[no-untyped-def]
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def setup_url(self) -> str:
        for line in self.stdout_lines:
            if "/setup/" in line:
                return line.strip()
        raise LookupError("the server printed no setup URL")


def start_server(data_dir: Path, *args: str, env: dict[str, str] | None = None,
                 port: int | None = None, timeout: float = 30.0) -> LiveServer:
    """Start ``python -m sandhaven serve`` and return once it says it is listening.

    Raises RuntimeError with what the process printed if it exits or never gets ready.
    """
    port = port or free_port()
    cmd = [sys.executable, "-m", "sandhaven", "serve", "--data-dir", str(data_dir),
           "--port", str(port), "--base-url", f"http://localhost:{port}",
           "--wildcard-host", f"*.localhost:{port}", *args]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SANDHAVEN_")}
    full_env.update(env or {})
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full_env)
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "serving the shell at" in line:
                ready.set()
        ready.set()

    errors: list[str] = []

    def drain() -> None:  # keep the pipe flowing so a chatty log never blocks the server
        assert proc.stderr is not None
        for line in proc.stderr:
            errors.append(line)

    pumps = [threading.Thread(target=pump, daemon=True), threading.Thread(target=drain,
                                                                          daemon=True)]
    for t in pumps:
        t.start()
    if not ready.wait(timeout) or proc.poll() is not None:
        proc.kill()
        proc.wait()
        for t in pumps:
            t.join(5)
        raise RuntimeError(f"sandhaven serve did not start: {''.join(lines)}"
                           f"{''.join(errors)[-2000:]}")
    server = LiveServer(proc, port, data_dir, lines, errors)
    server._pumps = pumps  # type: ignore[attr-defined]
    return server


def stop_server(server: LiveServer, timeout: float = 20.0) -> int:
    """SIGTERM, a bounded wait, then SIGKILL. Returns the exit code."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    for t in getattr(server, "_pumps", ()):
        t.join(10)
    for pipe in (server.process.stdout, server.process.stderr):
        if pipe is not None:
            pipe.close()
    return server.process.returncode


def csrf_from(html: str) -> str:
    """The CSRF token in a rendered shell page."""
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    if not found:
        raise LookupError("no CSRF token in page")
    return found.group(1)


def make_data_dir(data_dir: Path) -> None:
    """A data dir as the first start of ``serve`` leaves it (with the default
    settings: encryption on, a key file): keys, the private area and a migrated
    store, unmounted again. For tests of commands that need an existing server."""
    from sandhaven.config import load_settings
    from sandhaven.encryption import open_storage
    from sandhaven.store import Store

    settings = load_settings(environ={}, overrides={"data_dir": str(data_dir)})
    with open_storage(settings) as storage:
        Store.open(storage.database_url, wal=not storage.encrypted_store).close()
