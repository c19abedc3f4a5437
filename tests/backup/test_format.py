"""Writing and reading grain backups (sandhaven.backup.writer / reader), without the
sandbox or the server: round trips of awkward trees, and every malformed file."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sandhaven.backup import format as fmt
from sandhaven.backup import reader
from sandhaven.backup.writer import write_backup
from sandhaven.errors import BadBackup, SandhavenError

APP_ID = "a" * 52
BASE = {"app_id": APP_ID, "app_title": "Notes", "app_version": 3, "marketing_version": "1.2",
        "package_id": "0" * 32, "title": "Shopping \"list\"\nété",
        "created_at": datetime(2026, 1, 2, tzinfo=UTC),
        "backed_up_at": datetime(2026, 11, 30, tzinfo=UTC), "identities": []}


def awkward_tree(root: Path) -> None:
    """Names with non-ASCII, spaces, newlines and 255 bytes; an empty directory;
    symlinks inside and outside; a socket and a FIFO; mode bits; a hardlink."""
    (root / "docs" / "empty").mkdir(parents=True)
    (root / "docs" / "été à la plage.txt").write_text("sunny")
    (root / "docs" / "two\nlines").write_text("newline in the name")
    (root / "docs" / ("x" * 255)).write_bytes(b"long name")
    script = root / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o750)
    secret = root / "private"
    secret.write_text("mine")
    secret.chmod(0o600)
    (root / "docs" / "link-to-run").symlink_to("../run.sh")
    (root / "escape").symlink_to("/etc/passwd")
    os.link(root / "run.sh", root / "hardlink")
    os.mkfifo(root / "pipe")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(root / "sock"))
    s.close()
    for i in range(50):
        (root / "docs" / f"n{i:03}").write_bytes(os.urandom(i * 37))


def snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", stat.S_IMODE(st.st_mode), p.read_bytes())
    return out


def backup_bytes(tree: Path, log: bytes = b"started\n") -> bytes:
    buf = io.BytesIO()
    write_backup(tree, log, BASE, buf)
    return buf.getvalue()


def restore_into(data: bytes, out: Path) -> fmt.Metadata:
    zf, meta = reader.inspect(io.BytesIO(data))
    out.mkdir()
    reader.unpack(zf, meta, out)
    return meta


def test_an_awkward_tree_round_trips(tmp_path):
    tree = tmp_path / "var"
    tree.mkdir()
    awkward_tree(tree)
    data = backup_bytes(tree)
    meta = restore_into(data, tmp_path / "back")
    got, want = snapshot(tmp_path / "back"), snapshot(tree)
    # The escaping symlink, the socket and the FIFO are listed, not held.
    assert {(s.path, s.kind) for s in meta.skipped} == {
        ("escape", "symlink"), ("pipe", "fifo"), ("sock", "socket")}
    del want["escape"]
    assert got == want
    assert not (tmp_path / "back" / "hardlink").samefile(tmp_path / "back" / "run.sh")
    assert meta.title == BASE["title"] and meta.log.size == len(b"started\n")
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert names[-1] == "metadata.json" and "data/docs/empty/" in names


def test_ten_thousand_small_files_round_trip(tmp_path):
    tree = tmp_path / "var"
    for d in range(100):
        sub = tree / f"d{d}"
        sub.mkdir(parents=True)
        for f in range(100):
            (sub / f"f{f}").write_bytes(b"%d/%d" % (d, f))
    meta = restore_into(backup_bytes(tree), tmp_path / "back")
    assert sum(1 for e in meta.files if e.type == "file") == 10_000
    assert snapshot(tmp_path / "back") == snapshot(tree)


def test_a_sparse_file_stays_sparse_and_small(tmp_path):
    tree = tmp_path / "var"
    tree.mkdir()
    with open(tree / "disk.img", "wb") as f:
        f.truncate(256 * 1024 * 1024)
        f.seek(100 * 1024 * 1024)
        f.write(b"middle")
    data = backup_bytes(tree)
    assert len(data) < 2 * 1024 * 1024  # the holes deflate to almost nothing
    restore_into(data, tmp_path / "back")
    back = tmp_path / "back" / "disk.img"
    assert back.stat().st_size == 256 * 1024 * 1024
    assert back.stat().st_blocks * 512 < 4 * 1024 * 1024  # holes kept as holes
    with open(back, "rb") as f:
        f.seek(100 * 1024 * 1024)
        assert f.read(6) == b"middle"


def test_a_device_file_is_refused(tmp_path):
    tree = tmp_path / "var"
    tree.mkdir()
    os.mknod(tree / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    with pytest.raises(SandhavenError, match="'null' is a device"):
        backup_bytes(tree)


# -- bad input -----------------------------------------------------------------------

@pytest.fixture
def good(tmp_path) -> bytes:
    tree = tmp_path / "var"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.txt").write_text("alpha " * 100)
    (tree / "b.bin").write_bytes(os.urandom(3000))
    return backup_bytes(tree)


def refused(data: bytes, tmp_path: Path, match: str | None = None) -> str:
    out = tmp_path / "out"
    with pytest.raises(BadBackup, match=match) as caught:
        restore_into(data, out)
    return str(caught.value)


def rebuild(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for info, content in entries:
            zf.writestr(info, content)
    return buf.getvalue()


def entries_of(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    zf = zipfile.ZipFile(io.BytesIO(data))
    return [(i, zf.read(i)) for i in zf.infolist()]


def with_metadata(data: bytes, change) -> bytes:
    out = []
    for info, content in entries_of(data):
        if info.filename == "metadata.json":
            meta = json.loads(content)
            change(meta)
            content = json.dumps(meta).encode()
        out.append((info, content))
    return rebuild(out)


def test_every_truncation_is_refused(good, tmp_path):
    cuts = sorted(set(range(0, len(good), max(1, len(good) // 60))) | set(
        range(len(good) - 120, len(good))))
    for cut in cuts:
        with pytest.raises(BadBackup):
            zf, meta = reader.inspect(io.BytesIO(good[:cut]))
            out = tmp_path / f"cut{cut}"
            out.mkdir()
            reader.unpack(zf, meta, out)


def test_a_flipped_byte_is_refused_or_changes_nothing(good, tmp_path):
    want = None
    for pos in range(0, len(good), 13):
        damaged = bytearray(good)
        damaged[pos] ^= 0x40
        out = tmp_path / f"flip{pos}"
        try:
            restore_into(bytes(damaged), out)
        except BadBackup:
            continue
        want = want or snapshot(restore_into(good, tmp_path / "orig") and tmp_path / "orig")
        assert snapshot(out) == want, f"byte {pos} changed the content unnoticed"


@pytest.mark.parametrize("name", ["data/../evil", "/etc/evil", "C:\\evil", "data/a/../../x",
                                  "data//x"])
def test_zip_slip_names_are_refused(good, tmp_path, name):
    bad = rebuild(entries_of(good) + [(name, b"x")])
    refused(bad, tmp_path, "does not list")
    assert not (tmp_path / "evil").exists()


def test_a_listed_path_that_climbs_out_is_refused(good, tmp_path):
    def climb(meta):
        meta["files"].append({"path": "../evil", "type": "file", "mode": 420, "size": 1,
                              "sha256": "0" * 64})
    refused(with_metadata(good, climb), tmp_path, "unsafe path")


def test_a_symlink_pointing_outside_is_refused(good, tmp_path):
    info = zipfile.ZipInfo("data/evil")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    entries = entries_of(good)
    entries.insert(0, (info, b"/etc/passwd"))

    def link(meta):
        meta["files"].append({"path": "evil", "type": "symlink", "mode": 511,
                              "target": "/etc/passwd"})
    bad = with_metadata(rebuild(entries), link)
    refused(bad, tmp_path, "points outside")


def test_duplicate_names_are_refused(good, tmp_path):
    entries = entries_of(good)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it writes
        bad = rebuild(entries + [entries[1]])
    refused(bad, tmp_path, "twice")


def test_missing_metadata_is_refused(good, tmp_path):
    bad = rebuild([(i, c) for i, c in entries_of(good) if i.filename != "metadata.json"])
    refused(bad, tmp_path, "metadata.json is missing")


@pytest.mark.parametrize("change,match", [
    (lambda m: m.update(format=2), "format"),
    (lambda m: m.update(app_id="not an app id"), "app_id"),
    (lambda m: m.pop("title"), "title"),
    (lambda m: m["files"][0].update(size=5), "size or checksum"),
    (lambda m: m["files"].pop(), "does not list"),
])
def test_metadata_that_does_not_match_is_refused(good, tmp_path, change, match):
    refused(with_metadata(good, change), tmp_path, match)


def test_a_checksum_mismatch_is_refused(good, tmp_path):
    def wrong(meta):
        for f in meta["files"]:
            if f["type"] == "file":
                f["sha256"] = "f" * 64
    refused(with_metadata(good, wrong), tmp_path, "checksum")


def test_a_zip_bomb_is_refused_by_its_declared_sizes(good, tmp_path):
    """An entry whose data inflates past its declared size is cut at the declared
    size and then fails its checksum; the metadata's sizes are what the quota and
    disk checks use."""
    bomb = zipfile.ZipInfo("data/b.bin")
    bomb.compress_type = zipfile.ZIP_DEFLATED
    entries = [(bomb, bytes(50 * 1024 * 1024)) if i.filename == "data/b.bin" else (i, c)
               for i, c in entries_of(good)]
    refused(rebuild(entries), tmp_path, "size or checksum")


def test_not_a_zip_is_refused(tmp_path):
    assert "not a complete zip" in refused(b"hello, not a zip", tmp_path)


@pytest.mark.slow
def test_a_5_gib_sparse_file_round_trips_through_zip64(tmp_path):
    tree = tmp_path / "var"
    tree.mkdir()
    size = 5 * 1024**3
    with open(tree / "disk.img", "wb") as f:
        f.truncate(size)
        for offset in (0, 4 * 1024**3 + 12345, size - 5):
            f.seek(offset)
            f.write(b"mark!")
    archive = tmp_path / "big.zip"
    with open(archive, "wb") as out:
        write_backup(tree, b"", BASE, out)
    assert archive.stat().st_size < 64 * 1024 * 1024
    info = zipfile.ZipFile(archive).getinfo("data/disk.img")
    assert info.file_size == size  # past 4 GiB: zip64 sizes
    with open(archive, "rb") as f:
        zf, meta = reader.inspect(f)
        (tmp_path / "back").mkdir()
        reader.unpack(zf, meta, tmp_path / "back")
    back = tmp_path / "back" / "disk.img"
    assert back.stat().st_size == size and back.stat().st_blocks * 512 < 64 * 1024 * 1024
    with open(back, "rb") as f:
        for offset in (0, 4 * 1024**3 + 12345, size - 5):
            f.seek(offset)
            assert f.read(5) == b"mark!"


def test_an_archive_past_the_zip64_limit_round_trips(tmp_path, monkeypatch):
    """Offsets and sizes past the limit take zip64 records; with the limit lowered
    to 1 MiB, a 6 MiB backup exercises what a 5 GiB one does."""
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 1 << 20)
    tree = tmp_path / "var"
    tree.mkdir()
    for i in range(3):
        (tree / f"part{i}").write_bytes(os.urandom(2 << 20))
    archive = tmp_path / "big.zip"
    with open(archive, "wb") as out:
        write_backup(tree, b"", BASE, out)
    raw = archive.read_bytes()
    assert b"PK\x06\x06" in raw  # the zip64 end of central directory record
    with open(archive, "rb") as f:
        zf, meta = reader.inspect(f)
        (tmp_path / "back").mkdir()
        reader.unpack(zf, meta, tmp_path / "back")
    assert snapshot(tmp_path / "back") == snapshot(tree)
