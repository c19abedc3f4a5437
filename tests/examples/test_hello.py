"""The Hello example app, run as a real process on a free port."""

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from sandhaven.packages.testing import HELLO_SOURCE


@pytest.fixture
def hello(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    note = tmp_path / "note.txt"
    proc = subprocess.Popen([sys.executable, str(HELLO_SOURCE / "server.py")],
                            env={"PORT": str(port), "NOTE_PATH": str(note)},
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("hello listening")  # readiness signal
        yield f"http://127.0.0.1:{port}/", note
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


def _call(url, method="GET", body=None, headers=None):  # type: ignore[no-untyped-def]
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_get_echoes_sandstorm_headers_and_the_note(hello):
    url, note = hello
    status, body = _call(url, headers={"X-Sandstorm-Username": "Ren%C3%A9e",
                                       "X-Sandstorm-Permissions": "", "Cookie": "x=1"})
    assert status == 200
    assert body == {"headers": {"X-Sandstorm-Username": "Ren%C3%A9e",
                                "X-Sandstorm-Permissions": ""}, "note": ""}


def test_post_needs_the_write_permission(hello):
    url, note = hello
    status, _ = _call(url, "POST", b"hi", {"X-Sandstorm-Permissions": "comment"})
    assert status == 403 and not note.exists()
    status, body = _call(url, "POST", "grüß".encode(), {"X-Sandstorm-Permissions": "write"})
    assert (status, body) == (200, {"note": "grüß"})
    assert note.read_text(encoding="utf-8") == "grüß"
    assert _call(url)[1]["note"] == "grüß"
