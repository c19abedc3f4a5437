"""``sandhaven backup create`` / ``backup restore``: a whole server moves to a new
data directory with the same users, grains, shares and content."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from sandhaven.backup import encryption
from sandhaven.cli.main import main
from sandhaven.config import load_settings
from sandhaven.packages.keys import SigningKey
from sandhaven.packages.testing import build_hello
from sandhaven.sandbox.testing import make_runtime_root, remove_tree
from sandhaven.server import data_dir_lock
from sandhaven.services import Services

PASS = "a long server passphrase"


@contextmanager
def grain_files(services, grain_id):  # type: ignore[no-untyped-def]
    """The grain's files: its encrypted volume mounted for the block."""
    volumes = services.grains.volumes
    if volumes is None:
        yield services.grains.storage_dir(grain_id)
        return
    try:
        yield volumes.mount(grain_id)
    finally:
        volumes.unmount(grain_id)


pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture
def server_data():
    """A data dir with two users, a grain with a file and an absolute symlink, and a
    share of it; returns (root, data dir, grain ID)."""
    root = make_runtime_root()
    data = root / "data"
    services = Services.build(load_settings(environ={}, overrides={"data_dir": str(data)}))
    try:
        app_id = services.packages.install(build_hello(root, SigningKey.generate())).app_id
        ann = services.identity.users.create("ann@example.org", "Ann")
        services.identity.users.create("bob@example.org", "Bob")
        grain = services.grains.create(ann.id, app_id, 0, "Travel plans")
        with grain_files(services, grain.id) as var:
            (var / "plan.txt").write_text("Lisbon in May")
            (var / "app-link").symlink_to("/opt/app/static")  # a grain may hold these
        services.shares.invite(ann.id, grain.id, "bob@example.org", 0, message="")
    finally:
        services.store.close()
    yield root, data, grain.id
    remove_tree(root)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_server_moves_to_a_new_data_directory(server_data, capsys, tmp_path):
    root, data, gid = server_data
    secret = tmp_path / "pass"
    secret.write_text(PASS + "\n")
    archive = tmp_path / "server.backup"
    code, _, err = run(capsys, "backup", "create", "-o", archive, "--passphrase-file", secret,
                       "--data-dir", data)
    assert code == 0, err
    assert b"Lisbon in May" not in archive.read_bytes()
    assert b"ann@example.org" not in archive.read_bytes()

    new = root / "elsewhere" / "data"
    code, _, err = run(capsys, "backup", "restore", archive, "--passphrase-file", secret,
                       "--data-dir", new)
    assert code == 0, err
    services = Services.build(load_settings(environ={}, overrides={"data_dir": str(new)}))
    try:
        users = {u.email for u in services.identity.users.list()}
        assert users == {"ann@example.org", "bob@example.org"}
        ann = services.identity.users.find_by_email("ann@example.org")
        bob = services.identity.users.find_by_email("bob@example.org")
        assert [g.title for g in services.grains.list(ann.id)] == ["Travel plans"]
        assert [g.id for g in services.shares.shared_with(bob.id)] == [gid]
        with grain_files(services, gid) as var:
            assert (var / "plan.txt").read_text() == "Lisbon in May"
            assert (var / "app-link").readlink() == Path("/opt/app/static")
        assert services.packages.apps()[0].title
    finally:
        services.store.close()


def test_wrong_passphrase_or_a_used_directory_changes_nothing(server_data, capsys, tmp_path):
    root, data, _ = server_data
    secret = tmp_path / "pass"
    secret.write_text(PASS)
    archive = tmp_path / "server.backup"
    assert run(capsys, "backup", "create", "-o", archive, "--passphrase-file", secret,
               "--data-dir", data)[0] == 0
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase")
    new = root / "new"
    code, _, err = run(capsys, "backup", "restore", archive, "--passphrase-file", wrong,
                       "--data-dir", new)
    assert code == 20 and "passphrase does not open" in err and not new.exists()
    assert not any(p.name.startswith(".restore-") for p in root.iterdir())
    code, _, err = run(capsys, "backup", "restore", archive, "--passphrase-file", secret,
                       "--data-dir", data)
    assert code == 2 and "is not empty" in err
    code, _, err = run(capsys, "backup", "create", "-o", archive, "--passphrase-file", secret,
                       "--data-dir", data)
    assert code == 2 and "never overwrite" in err


def test_create_refuses_while_the_server_runs(server_data, tmp_path):
    _, data, _ = server_data
    secret = tmp_path / "pass"
    secret.write_text(PASS)
    with data_dir_lock(data):
        done = subprocess.run([sys.executable, "-m", "sandhaven", "backup", "create", "-o",
                               str(tmp_path / "b"), "--passphrase-file", str(secret),
                               "--data-dir", str(data)], capture_output=True, text=True)
    assert done.returncode == 4 and "stop it first" in done.stderr
    assert not (tmp_path / "b").exists()


def encrypted_tar(tmp_path: Path, build) -> Path:  # type: ignore[no-untyped-def]
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as tar:
        build(tar)
    out = tmp_path / "evil.backup"
    with open(plain, "rb") as src, open(out, "wb") as dst:
        encryption.encrypt(src, dst, PASS)
    return out


def add(tar: tarfile.TarFile, name: str, data: bytes = b"", **kw) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for k, v in kw.items():
        setattr(info, k, v)
    tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("build,message", [
    (lambda t: add(t, "data/sandhaven.sqlite3", b"x"), "marker is missing"),
    (lambda t: (add(t, "sandhaven-server-backup-1"), add(t, "../escape", b"x")),
     "Unexpected entry"),
    (lambda t: (add(t, "sandhaven-server-backup-1"), add(t, "data/dev", type=tarfile.CHRTYPE)),
     "Device file"),
    (lambda t: (add(t, "sandhaven-server-backup-1"),
                add(t, "data/link", type=tarfile.SYMTYPE, linkname="/etc"),
                add(t, "data/link/passwd", b"owned")), "damaged or unsafe"),
    (lambda t: (add(t, "sandhaven-server-backup-1"), add(t, "data/notes", b"x")),
     "holds no store"),
])
def test_a_forged_server_backup_is_refused(tmp_path, capsys, build, message):
    archive = encrypted_tar(tmp_path, build)
    secret = tmp_path / "pass"
    secret.write_text(PASS)
    new = tmp_path / "new"
    code, _, err = run(capsys, "backup", "restore", archive, "--passphrase-file", secret,
                       "--data-dir", new)
    assert code == 20 and message in err, err
    assert not new.exists() and not Path("/etc/passwd").read_text().startswith("owned")
