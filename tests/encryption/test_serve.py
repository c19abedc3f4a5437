"""``sandhaven serve`` with encryption: the one-line errors at start, and passphrase
mode (sealed start, wrong passphrase refused, right one unseals, grains open)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sandhaven.encryption.private import kek_path
from sandhaven.packages.keys import SigningKey
from sandhaven.packages.testing import build_hello
from sandhaven.sandbox.testing import make_runtime_root, remove_tree
from sandhaven.supervisor.mounts import mounts_under
from sandhaven.testing import free_port, start_server, stop_server

CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin"}


def sandhaven(*args: str, data_dir: Path, stdin: str = "", timeout: float = 60
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sandhaven", "--data-dir", str(data_dir),
                           *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=CLEAN_ENV)


def serve_once(data_dir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """A serve that is expected to stop at start."""
    return sandhaven("serve", "--port", str(free_port()), *flags, data_dir=data_dir)


def grain_behind_an_api_token(server, data: Path, spk: Path, title: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Through admin commands run beside ``server`` and its API: install ``spk``, add
    a user, make a grain of its note action; the headers of a full grain API token
    on the API host."""
    installed = sandhaven("install", str(spk), data_dir=data)
    assert installed.returncode == 0, installed.stderr
    app_id = installed.stdout.strip().rsplit("(app ", 1)[1].rstrip(")")
    assert sandhaven("user", "add", "a@example.org", "--name", "A",
                     data_dir=data).returncode == 0
    token = sandhaven("token", "create", "a@example.org", data_dir=data).stdout.strip()
    with server.client(headers={"Authorization": f"Bearer {token}"}) as c:
        gid = c.post("/api/v1/grains", json={"app_id": app_id, "action": "note",
                                             "title": title}).json()["id"]
        grain_token = c.post(f"/api/v1/grains/{gid}/api-tokens", json={"role": 0}).json()
    return {"Host": f"api.localhost:{server.port}",
            "Authorization": f"Bearer {grain_token['token']}"}


@pytest.fixture
def root():  # type: ignore[no-untyped-def]
    made = make_runtime_root()
    yield made
    remove_tree(made)


@pytest.mark.parametrize("flags, line", [
    (("--storage-gocryptfs", "/nonexistent/gocryptfs"), "gocryptfs is not installed"),
    (("--storage-fuse-device", "/nonexistent/fuse"), "FUSE is not available"),
])
def test_serve_stops_with_one_line_when_the_host_cannot_encrypt(root, flags, line):
    done = serve_once(root / "data", *flags)
    assert done.returncode == 5
    assert done.stderr.strip().splitlines()[-1].startswith(f"sandhaven: {line}")
    assert "Traceback" not in done.stderr
    assert not (root / "data" / "private").exists() or mounts_under(root) == []


def test_serve_stops_on_a_damaged_key_file_and_starts_with_the_right_one(root):
    data = root / "data"
    assert sandhaven("keys", "init", data_dir=data).returncode == 0
    key = kek_path(data)
    saved = key.read_bytes()
    doc = json.loads(saved)
    doc["key"] = doc["key"][:-6] + "AAAAA="
    key.write_text(json.dumps(doc))
    done = serve_once(data, "--sandbox-runtime-dir", str(root / "run"))
    assert done.returncode == 5
    last = done.stderr.strip().splitlines()[-1]
    assert "is damaged" in last and "restore it from your backup" in last
    assert mounts_under(root) == []
    key.write_bytes(saved)
    again = sandhaven("keys", "init", data_dir=data)
    assert again.returncode == 5 and "already holds keys" in again.stderr


def test_passphrase_mode_starts_sealed_and_unseals_with_the_right_passphrase(root):
    data = root / "data"
    short = sandhaven("keys", "init", "--passphrase", data_dir=data, stdin="a\n")
    assert short.returncode != 0 and "at least 8 characters" in short.stderr
    made = sandhaven("keys", "init", "--passphrase", data_dir=data, stdin="open sesame\n")
    assert made.returncode == 0, made.stderr
    spk = build_hello(root, SigningKey.generate())
    server = start_server(data, "--storage-key-source", "passphrase",
                          "--sandbox-runtime-dir", str(root / "run"))
    try:
        assert any("is sealed" in line for line in server.stdout_lines)
        assert mounts_under(data) == []  # the store is not even open
        with server.client() as c:
            page = c.get("/grains")
            assert page.status_code == 503 and 'action="/unseal"' in page.text
            assert c.get("/api/v1/me").status_code == 503
            wrong = c.post("/unseal", data={"passphrase": "open barley"})
            assert wrong.status_code == 403 and "Wrong passphrase." in wrong.text
            # A page elsewhere cannot post guesses (or the passphrase) for the admin.
            forged = c.post("/unseal", data={"passphrase": "open sesame"},
                            headers={"Origin": "http://evil.example"})
            assert forged.status_code == 403 and "Cross-site request refused." in forged.text
            assert c.get("/api/v1/me").status_code == 503  # still sealed
        bad = sandhaven("unseal", "--url", server.url, data_dir=data, stdin="nope\n")
        assert bad.returncode == 5 and bad.stderr.strip() == "sandhaven: Wrong passphrase."
        good = sandhaven("unseal", "--url", server.url, data_dir=data, stdin="open sesame\n")
        assert good.returncode == 0 and "Unsealed." in good.stdout, good.stderr
        again = sandhaven("unseal", "--url", server.url, data_dir=data, stdin="open sesame\n")
        assert again.returncode == 5 and again.stderr.strip() == (
            f"sandhaven: The server at {server.url}/unseal is not sealed (it answered 403).")
        assert mounts_under(data) != []
        # Admin commands work beside the unsealed server, through its mount.
        api_headers = grain_behind_an_api_token(server, data, spk, "Sealed note")
        with httpx.Client(base_url=server.url, timeout=60, headers=api_headers) as api:
            assert api.post("/", content="kept").status_code == 200
            assert api.get("/").json()["note"] == "kept"
    finally:
        assert stop_server(server) == 0
    assert mounts_under(root) == []


def gocryptfs_processes(data_dir: Path) -> list[int]:
    """PIDs of gocryptfs processes serving a volume under ``data_dir``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"gocryptfs") and any(str(data_dir).encode() in a for a in argv):
            found.append(int(proc.name))
    return found


def test_a_server_killed_with_sigkill_leaves_no_plaintext_mounted(root):
    """The gocryptfs daemons end with the server however it ends: a SIGKILL leaves
    no mount of the private area or of a running grain's volume, and no daemon
    holding a key. The next start opens the same content."""
    data, run = root / "data", root / "run"
    assert sandhaven("keys", "init", data_dir=data).returncode == 0
    spk = build_hello(root, SigningKey.generate())
    server = start_server(data, "--sandbox-runtime-dir", str(run))
    try:
        api = grain_behind_an_api_token(server, data, spk, "Killed")
        with httpx.Client(base_url=server.url, timeout=60, headers=api) as client:
            assert client.post("/", content="still here").status_code == 200
        points = mounts_under(data) + mounts_under(run)
        assert len(points) == 2  # the private area and the running grain's volume
        assert len(gocryptfs_processes(data)) == 2

        server.process.kill()
        server.process.wait(30)
        deadline = time.monotonic() + 10
        while mounts_under(data) + mounts_under(run) or gocryptfs_processes(data):
            assert time.monotonic() < deadline, (
                f"left behind: {mounts_under(data) + mounts_under(run)}, "
                f"{gocryptfs_processes(data)}")
            time.sleep(0.05)
        for point in points:  # what is left there is the empty mount point
            assert not Path(point).exists() or os.listdir(point) == []
    finally:
        stop_server(server)

    again = start_server(data, "--sandbox-runtime-dir", str(run))
    try:
        with httpx.Client(base_url=again.url, timeout=60, headers={
                **api, "Host": f"api.localhost:{again.port}"}) as client:
            assert client.get("/").json()["note"] == "still here"
    finally:
        assert stop_server(again) == 0
    assert mounts_under(root) == []
