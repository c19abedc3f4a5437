"""``sandhaven grain backup`` and ``grain restore`` on a real data directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandhaven.cli.main import main
from sandhaven.config import load_settings
from sandhaven.encryption import open_storage
from sandhaven.packages.keys import SigningKey
from sandhaven.packages.testing import build_hello
from sandhaven.sandbox.testing import make_runtime_root, remove_tree
from sandhaven.server import data_dir_lock
from sandhaven.services import Services

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture
def data_with_grain():
    """A data dir holding a Hello grain of ann@example.org with a file in its /var;
    returns (data dir, grain ID)."""
    root = make_runtime_root()  # the restore worker's user must reach it
    data = root / "data"
    settings = load_settings(environ={}, overrides={"data_dir": str(data)})
    try:
        with open_storage(settings) as storage:  # as a first `serve` leaves it
            services = Services.build(settings, storage=storage)
            try:
                app_id = services.packages.install(
                    build_hello(root, SigningKey.generate())).app_id
                ann = services.identity.users.create("ann@example.org", "Ann")
                services.identity.users.create("bob@example.org", "Bob")
                grain = services.grains.create(ann.id, app_id, 0, "Ann's notes")
                volumes = services.grains.volumes  # the grain's encrypted files, mounted
                (volumes.mount(grain.id) / "note.txt").write_text("kept safe")
                volumes.unmount(grain.id)
            finally:
                services.store.close()
        yield data, grain.id
    finally:
        remove_tree(root)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_backup_then_restore_for_another_user(data_with_grain, capsys, tmp_path):
    data, gid = data_with_grain
    out = tmp_path / "notes.zip"
    code, _, err = run(capsys, "grain", "backup", gid, "-o", out, "--data-dir", data)
    assert code == 0 and "entries" in err and out.stat().st_size > 0
    code, _, err = run(capsys, "grain", "backup", gid, "-o", out, "--data-dir", data)
    assert code == 2 and "never overwrite" in err
    code, new_id, _ = run(capsys, "grain", "restore", out, "--owner", "bob@example.org",
                          "--data-dir", data)
    new_id = new_id.strip().splitlines()[-1]
    assert code == 0 and new_id != gid
    assert not (data / "grains" / new_id / "var").exists()  # restored encrypted
    with open_storage(load_settings(environ={}, overrides={"data_dir": str(data)})) as storage:
        assert storage.volumes is not None
        assert (storage.volumes.mount(new_id) / "note.txt").read_text() == "kept safe"
        storage.volumes.unmount(new_id)


def test_backup_refuses_while_the_server_holds_the_data_dir(data_with_grain, tmp_path):
    data, gid = data_with_grain
    out = tmp_path / "b.zip"
    with data_dir_lock(data):  # as a running `sandhaven serve` does
        done = subprocess.run([sys.executable, "-m", "sandhaven", "grain", "backup", gid,
                               "-o", str(out), "--data-dir", str(data)],
                              capture_output=True, text=True)
    assert done.returncode == 4 and "stop it first" in done.stderr
    assert done.stderr.count("\n") == 1 and not out.exists()


@pytest.mark.parametrize("content,code,message", [
    (b"not a zip at all", 20, "not a complete zip"),
    (None, 2, "Cannot read"),
    ("/dev/zero", 20, "must be a regular file"),  # endless: refused before reading
    ("fifo", 20, "must be a regular file"),
])
def test_restore_of_a_bad_file_says_why(data_with_grain, capsys, tmp_path, content, code,
                                        message):
    data, _ = data_with_grain
    path = tmp_path / "in.zip"
    holder = None
    if content == "/dev/zero":
        path = Path(content)
    elif content == "fifo":
        os.mkfifo(path)
        holder = os.open(path, os.O_RDWR)  # a writer, so that opening to read does not wait
    elif content is not None:
        path.write_bytes(content)
    before = sorted(p.name for p in (data / "grains").iterdir())
    try:
        got, _, err = run(capsys, "grain", "restore", path, "--owner", "ann@example.org",
                          "--data-dir", data)
    finally:
        if holder is not None:
            os.close(holder)
    assert got == code and message in err and err.count("\n") == 1
    assert sorted(p.name for p in (data / "grains").iterdir()) == before


def test_restore_for_an_unknown_owner_is_refused(data_with_grain, capsys, tmp_path):
    data, gid = data_with_grain
    out = tmp_path / "a.zip"
    assert run(capsys, "grain", "backup", gid, "-o", out, "--data-dir", data)[0] == 0
    code, _, err = run(capsys, "grain", "restore", out, "--owner", "nobody@example.org",
                       "--data-dir", data)
    assert code == 2 and "No user with the email address 'nobody@example.org'" in err


def test_backup_of_an_unknown_grain(data_with_grain, capsys, tmp_path):
    data, _ = data_with_grain
    code, _, err = run(capsys, "grain", "backup", "nope", "-o", tmp_path / "x.zip",
                       "--data-dir", data)
    assert code == 2 and "No grain with ID 'nope'" in err and not (tmp_path / "x.zip").exists()




def test_an_encrypted_backup_needs_its_passphrase(data_with_grain, capsys, tmp_path,
                                                  monkeypatch):
    import io

    data, gid = data_with_grain
    secret = tmp_path / "pass.txt"
    secret.write_text("a long passphrase\nignored second line\n")
    out = tmp_path / "notes.zip.gpg"
    code, _, err = run(capsys, "grain", "backup", gid, "-o", out, "--passphrase-file", secret,
                       "--data-dir", data)
    assert code == 0, err
    assert b"kept safe" not in out.read_bytes()
    code, _, err = run(capsys, "grain", "restore", out, "--owner", "ann@example.org",
                       "--data-dir", data)
    assert code == 20 and "This backup is encrypted: give its passphrase." in err
    monkeypatch.setattr("sys.stdin", io.StringIO("a long passphrase\n"))
    code, new_id, err = run(capsys, "grain", "restore", out, "--owner", "ann@example.org",
                            "--passphrase-file", "-", "--data-dir", data)
    assert code == 0, err
    new_id = new_id.strip().splitlines()[-1]
    assert not (data / "grains" / new_id / "var").exists()  # restored encrypted
    with open_storage(load_settings(environ={}, overrides={"data_dir": str(data)})) as storage:
        assert storage.volumes is not None
        assert (storage.volumes.mount(new_id) / "note.txt").read_text() == "kept safe"
        storage.volumes.unmount(new_id)
    code, _, err = run(capsys, "grain", "backup", gid, "-o", tmp_path / "x", "--passphrase-file",
                       tmp_path / "missing", "--data-dir", data)
    assert code == 2 and "Cannot read the passphrase" in err
