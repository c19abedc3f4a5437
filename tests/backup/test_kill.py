"""SIGKILL of a real ``sandhaven serve`` while it backs up and while it restores: the
original grain stays intact, and no half-made grain or staging tree survives."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from sandhaven.packages.keys import SigningKey
from sandhaven.packages.testing import build_hello
from sandhaven.sandbox.testing import make_runtime_root, remove_tree
from sandhaven.testing import LiveServer, start_server, stop_server

pytestmark = pytest.mark.slow
DATA_MIB = 128


# This test writes into a grain's files and watches the server's temp directory
# directly, so it runs on plaintext storage; tests/encryption covers encrypted
# storage, and tests/backup/test_service.py backups of encrypted grains.
PLAINTEXT = {"SANDHAVEN_STORAGE_ENCRYPTION": "false"}


def cli(data: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "sandhaven", "--data-dir", str(data), *args],
                          capture_output=True, text=True, check=True,
                          env={**os.environ, **PLAINTEXT})
    return done.stdout.strip().splitlines()[-1]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def open_temp_files(pid: int, directory: Path) -> bool:
    """True when process ``pid`` holds an (unlinked) temporary file in ``directory``
    (an O_TMPFILE file shows as ``directory/#inode (deleted)``)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(f"{directory}/"):
                return True
        except OSError:
            continue
    return False


def staging_exists(data: Path) -> bool:
    return any(p.name.startswith(".restore-") for p in (data / "grains").iterdir())


class Box:
    """A server we kill and start again on the same data dir and port."""

    def __init__(self, root: Path) -> None:
        self.root, self.data = root, root / "data"
        self.live: LiveServer | None = None
        self.port: int | None = None

    def start(self) -> LiveServer:
        self.live = start_server(self.data, "--sandbox-runtime-dir", str(self.root / "run"),
                                 port=self.port, env=PLAINTEXT)
        self.port = self.live.port
        return self.live

    def kill(self) -> None:
        assert self.live is not None
        self.live.process.send_signal(signal.SIGKILL)
        stop_server(self.live)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_kill_during_backup_and_restore(tmp_path):
    root = make_runtime_root()
    box = Box(root)
    try:
        live = box.start()
        cli(box.data, "install", str(build_hello(root, SigningKey.generate())))
        cli(box.data, "user", "add", "ann@example.org", "--name", "Ann")
        token = cli(box.data, "token", "create", "ann@example.org")
        auth = {"Authorization": f"Bearer {token}"}
        app_id = httpx.get(f"{live.url}/api/v1/apps", headers=auth).json()[0]["app_id"]
        gid = httpx.post(f"{live.url}/api/v1/grains", headers=auth, json={
            "app_id": app_id, "action": 0, "title": "Big"}).json()["id"]
        big = box.data / "grains" / gid / "var" / "big.bin"
        with open(big, "wb") as f:
            for _ in range(DATA_MIB):
                f.write(os.urandom(1024 * 1024))
        want = digest(big)

        def survived(live: LiveServer) -> None:
            grains = httpx.get(f"{live.url}/api/v1/grains", headers=auth).json()
            assert [g["id"] for g in grains] == [gid], "no half-made grain"
            assert digest(big) == want, "the original grain is intact"
            assert not staging_exists(box.data)

        # 1. Killed while the backup is being written — which blocks nothing else: the
        #    server answers another request while the copy is still open.
        def download() -> None:
            try:
                httpx.get(f"{live.url}/api/v1/grains/{gid}/backup", headers=auth, timeout=60)
            except httpx.HTTPError:
                pass
        t = threading.Thread(target=download)
        t.start()
        wait_for(lambda: open_temp_files(live.process.pid, box.data / "tmp"), "the backup file")
        assert httpx.get(f"{live.url}/api/v1/me", headers=auth).status_code == 200
        assert open_temp_files(live.process.pid, box.data / "tmp"), "backup still running"
        box.kill()
        t.join()
        live = box.start()
        survived(live)

        # 2. Killed while the finished backup streams to the client.
        with httpx.stream("GET", f"{live.url}/api/v1/grains/{gid}/backup", headers=auth,
                          timeout=60) as r:
            assert r.status_code == 200
            next(r.iter_bytes(65536))
            box.kill()
        live = box.start()
        survived(live)
        backup = tmp_path / "big.zip"
        with httpx.stream("GET", f"{live.url}/api/v1/grains/{gid}/backup", headers=auth,
                          timeout=120) as r, open(backup, "wb") as out:
            for chunk in r.iter_bytes():
                out.write(chunk)

        # 3. Killed while the restore unpacks into its staging tree.
        def upload() -> None:
            try:
                httpx.post(f"{live.url}/api/v1/grains/restore", headers=auth,
                           content=backup.read_bytes(), timeout=120)
            except httpx.HTTPError:
                pass
        t = threading.Thread(target=upload)
        t.start()
        wait_for(lambda: staging_exists(box.data), "the staging tree")
        box.kill()
        t.join()
        live = box.start()
        survived(live)

        # 4. Killed while the upload is still arriving.
        def slow_upload() -> None:
            def body():
                data = backup.read_bytes()
                for i in range(0, len(data), 1 << 20):
                    yield data[i:i + (1 << 20)]
                    if i > 32 << 20:
                        box.kill()
            try:
                httpx.post(f"{live.url}/api/v1/grains/restore", headers=auth, content=body(),
                           timeout=120)
            except httpx.HTTPError:
                pass
        t = threading.Thread(target=slow_upload)
        t.start()
        t.join()
        live = box.start()
        survived(live)
        # And a restore that is not interrupted succeeds.
        done = httpx.post(f"{live.url}/api/v1/grains/restore", headers=auth,
                          content=backup.read_bytes(), timeout=120)
        assert done.status_code == 201
        restored = box.data / "grains" / done.json()["id"] / "var" / "big.bin"
        assert digest(restored) == want
    finally:
        if box.live is not None:
            stop_server(box.live)
        remove_tree(root)


def test_a_grain_moves_to_another_server(tmp_path):
    """Two servers with their own data dirs (own store, own secrets and keys): a grain
    backed up on one restores on the other and serves its content there."""
    roots = [make_runtime_root(), make_runtime_root()]
    boxes = [Box(r) for r in roots]
    try:
        tokens, urls = [], []
        spk = build_hello(roots[0], SigningKey.generate())
        for box in boxes:
            live = box.start()
            cli(box.data, "install", str(spk))
            cli(box.data, "user", "add", "ann@example.org", "--name", "Ann")
            tokens.append({"Authorization": "Bearer " + cli(box.data, "token", "create",
                                                              "ann@example.org")})
            urls.append(live.url)
        app_id = httpx.get(f"{urls[0]}/api/v1/apps", headers=tokens[0]).json()[0]["app_id"]
        gid = httpx.post(f"{urls[0]}/api/v1/grains", headers=tokens[0], json={
            "app_id": app_id, "action": 0, "title": "Moving"}).json()["id"]
        (boxes[0].data / "grains" / gid / "var" / "note.txt").write_text("on the move")
        backup = httpx.get(f"{urls[0]}/api/v1/grains/{gid}/backup", headers=tokens[0],
                           timeout=60)
        assert backup.status_code == 200
        restored = httpx.post(f"{urls[1]}/api/v1/grains/restore", headers=tokens[1],
                              content=backup.content, timeout=60)
        assert restored.status_code == 201, restored.text
        new_id = restored.json()["id"]
        assert restored.json()["title"] == "Moving"
        assert (boxes[1].data / "grains" / new_id / "var" / "note.txt").read_text() == (
            "on the move")
        assert httpx.get(f"{urls[1]}/api/v1/grains/{new_id}", headers=tokens[1]
                         ).status_code == 200
    finally:
        for box in boxes:
            if box.live is not None:
                stop_server(box.live)
        for root in roots:
            remove_tree(root)
