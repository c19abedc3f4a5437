"""The .spk format and every kind of bad package: each is refused with one line
naming the problem, and installing it leaves nothing on disk or in the store."""

import hashlib
import struct

import pytest
from sqlalchemy import func, select

from sandhaven.errors import (
    BadFormat,
    BadSignature,
    InvalidManifest,
    PackageError,
    PackageTooLarge,
    UnsafeEntry,
)
from sandhaven.packages import archive, spk
from sandhaven.packages.install import install_package
from sandhaven.packages.limits import Limits
from sandhaven.packages.testing import build_hello, build_raw, hello_entries, hello_manifest
from sandhaven.packages.tree import TreeWriter
from sandhaven.store.models import App, Package


def test_verify_reports_ids(hello_spk, key):
    summary = spk.verify_file(hello_spk)
    data = hello_spk.read_bytes()
    assert summary == {
        "app_id": key.app_id,
        "package_id": hashlib.sha256(data).digest()[:16].hex(),
        "title": "Hello", "version": 1, "marketing_version": "1.0.0",
    }


def test_header_layout(hello_spk, key):
    data = hello_spk.read_bytes()
    assert data[:8] == b"\x89SPK\r\n\x1a\n"
    assert struct.unpack(">HH", data[8:12]) == (1, 0)
    assert data[12:44] == key.public_key
    manifest_len, archive_len = struct.unpack(">IQ", data[108:120])
    assert 120 + manifest_len + archive_len == len(data)
    assert data[120:120 + manifest_len] == hello_manifest().to_json_bytes()
    body_hash = hashlib.sha256(data[108:]).digest()
    message = b"sandhaven-spk\x00\x00\x01" + key.public_key + body_hash
    assert data[44:108] == key.sign(message)


def test_only_verify_makes_a_verified_package(hello_spk):
    with open(hello_spk, "rb") as f:
        pkg = spk.verify(f)
        fields = {k: getattr(pkg, k) for k in ("app_id", "package_id", "manifest",
                                                "manifest_bytes", "size_bytes", "file",
                                                "body_sha256")}
        with pytest.raises(TypeError, match="only"):
            spk.VerifiedPackage(**fields, _token=object())


def _verify_bytes(tmp_path, data, name="x.spk"):
    path = tmp_path / name
    path.write_bytes(data)
    return spk.verify_file(path)


def test_wrong_magic(tmp_path, hello_spk):
    data = bytearray(hello_spk.read_bytes())
    data[0:4] = b"PK\x03\x04"
    with pytest.raises(BadFormat, match="wrong magic"):
        _verify_bytes(tmp_path, bytes(data))


def test_not_a_file(tmp_path):
    with pytest.raises(BadFormat, match="not a regular file"):
        spk.verify_file(tmp_path)
    with pytest.raises(BadFormat, match="cannot be read"):
        spk.verify_file(tmp_path / "missing.spk")


def test_truncated_at_every_byte(tmp_path, hello_spk):
    data = hello_spk.read_bytes()
    path = tmp_path / "cut.spk"
    for n in range(len(data)):
        path.write_bytes(data[:n])
        with pytest.raises(BadFormat, match="truncated") as info:
            spk.verify_file(path)
        assert "\n" not in str(info.value)


def test_every_single_flipped_byte_is_refused(tmp_path, hello_spk):
    data = hello_spk.read_bytes()
    path = tmp_path / "flip.spk"
    for i in range(len(data)):
        for mask in (0x01, 0x80):
            mutated = bytearray(data)
            mutated[i] ^= mask
            path.write_bytes(mutated)
            with pytest.raises(PackageError):
                spk.verify_file(path)


def test_flips_in_signed_parts_are_signature_errors(tmp_path, hello_spk):
    data = hello_spk.read_bytes()
    for i in (12, 43, 44, 107, 121, len(data) - 1):  # key, signature, manifest, archive
        mutated = bytearray(data)
        mutated[i] ^= 0x20
        with pytest.raises(BadSignature, match="does not verify"):
            _verify_bytes(tmp_path, bytes(mutated))


def test_signature_by_another_key(tmp_path, hello_spk, other_key):
    data = bytearray(hello_spk.read_bytes())
    data[12:44] = other_key.public_key  # claims the other app, keeps the old signature
    with pytest.raises(BadSignature):
        _verify_bytes(tmp_path, bytes(data))


def test_valid_signature_over_a_different_archive(tmp_path, key):
    one = build_hello(tmp_path, key, name="one").read_bytes()
    two = build_hello(tmp_path, key, name="two", version=2).read_bytes()
    spliced = two[:44] + one[44:108] + two[108:]  # signature of one, body of two
    with pytest.raises(BadSignature):
        _verify_bytes(tmp_path, spliced)


def test_trailing_bytes_version_and_flags(tmp_path, hello_spk):
    data = hello_spk.read_bytes()
    with pytest.raises(BadFormat, match="1 bytes after the end"):
        _verify_bytes(tmp_path, data + b"\0")
    with pytest.raises(BadFormat, match="format version 2"):
        _verify_bytes(tmp_path, data[:8] + b"\x00\x02" + data[10:])
    with pytest.raises(BadFormat, match="flags"):
        _verify_bytes(tmp_path, data[:10] + b"\x00\x01" + data[12:])


def test_a_newer_package_signed_by_another_key_is_another_app(tmp_path, key, other_key):
    """An update can only come from the app's key: a package's app ID *is* the key that
    signed it, so re-signing with another key makes another app, and keeping the
    original key's ID with another key's signature does not verify."""
    original = build_hello(tmp_path, key, name="orig").read_bytes()
    impostor = build_hello(tmp_path, other_key, name="impostor", version=99)
    assert spk.verify_file(impostor)["app_id"] == other_key.app_id != key.app_id
    forged = bytearray(impostor.read_bytes())
    forged[12:44] = original[12:44]
    with pytest.raises(BadSignature):
        _verify_bytes(tmp_path, bytes(forged))


def _dir_file(w, path="d/x"):
    w.directory("d")
    w.file(path, b"x")


# name -> (fill(writer), expected error, message fragment, limits)
SMALL = Limits(max_unpacked_bytes=1 << 20, max_entries=20, max_path_bytes=64, max_depth=4)
CASES = {
    "absolute path": (lambda w: w.file("/etc/passwd", b"x"), UnsafeEntry, "absolute path"),
    "dotdot": (lambda w: w.file("../escape", b"x"), UnsafeEntry, "'..' component"),
    "dotdot inside": (lambda w: (w.directory("a"), w.file("a/../../x", b"x")), UnsafeEntry,
                      "'..' component"),
    "empty component": (lambda w: w.file("a//b", b"x"), UnsafeEntry, "empty or '.'"),
    "dot": (lambda w: w.file(".", b"x"), UnsafeEntry, "empty or '.'"),
    "NUL": (lambda w: w.file("a\x00b", b"x"), UnsafeEntry, "NUL"),
    "newline": (lambda w: w.file("a\nb", b"x"), UnsafeEntry, "newline"),
    "control": (lambda w: w.file("a\x1bb", b"x"), UnsafeEntry, "control character"),
    "not utf-8": (lambda w: w.raw_entry(archive.FILE, 0o644, b"\xff\xfe", b"x"), UnsafeEntry,
                  "not a UTF-8 name"),
    "absolute symlink": (lambda w: w.symlink("l", "/etc/passwd"), UnsafeEntry,
                         "points outside"),
    "escaping symlink": (lambda w: w.symlink("l", "../x"), UnsafeEntry, "points outside"),
    "deep escaping symlink": (lambda w: (w.directory("d"), w.symlink("d/l", "../../x")),
                              UnsafeEntry, "points outside"),
    "chained symlink": (lambda w: (w.directory("d"), w.symlink("d/up", ".."),
                                   w.symlink("d/l", "up/../..")),
                        UnsafeEntry, "points outside"),
    "hardlink": (lambda w: w.raw_entry(ord("1"), 0o644, b"h", b"server.py"), UnsafeEntry,
                 "is a hardlink"),
    "char device": (lambda w: w.raw_entry(ord("3"), 0o644, b"c"), UnsafeEntry,
                    "character device"),
    "block device": (lambda w: w.raw_entry(ord("4"), 0o644, b"b"), UnsafeEntry,
                     "block device"),
    "FIFO": (lambda w: w.raw_entry(ord("6"), 0o644, b"f"), UnsafeEntry, "is a FIFO"),
    "unknown type": (lambda w: w.raw_entry(ord("X"), 0o644, b"u"), UnsafeEntry,
                     "unknown type 0x58"),
    "setuid": (lambda w: w.file("s", b"x", 0o4755), UnsafeEntry, "setuid"),
    "setgid": (lambda w: w.directory("g", 0o2755), UnsafeEntry, "setgid"),
    "sticky": (lambda w: w.directory("t", 0o1777), UnsafeEntry, "only permission bits"),
    "duplicate": (lambda w: (w.file("a", b"1"), w.file("a", b"2")), UnsafeEntry,
                  "appears twice"),
    "duplicate dir": (lambda w: (w.directory("a"), w.directory("a")), UnsafeEntry,
                      "appears twice"),
    "undeclared parent": (lambda w: w.file("nodir/x", b"x"), UnsafeEntry,
                          "before its directory"),
    "write through symlink": (lambda w: (w.directory("d"), w.symlink("l", "d"),
                                         w.file("l/x", b"x")),
                              UnsafeEntry, "before its directory"),
    "file as parent": (lambda w: (w.file("f", b""), w.file("f/x", b"x")), UnsafeEntry,
                       "before its directory"),
    "bomb by declared size": (lambda w: w.raw_entry(archive.FILE, 0o644, b"big", b"",
                                                    size=5 << 30),
                              PackageTooLarge, "unpacks to more than"),
    "bomb by real data": (lambda w: w.file("zeros", bytes(4 << 20)), PackageTooLarge,
                          "unpacks to more than"),
    "too many entries": (lambda w: [w.file(f"f{i}", b"") for i in range(30)],
                         PackageTooLarge, "more than 20 entries"),
    "path too long": (lambda w: w.file("p" * 65, b""), PackageTooLarge, "path is 65 bytes"),
    "too deep": (lambda w: [w.directory("/".join("d" * (i + 1))) for i in range(5)],
                 PackageTooLarge, "5 levels deep"),
    "symlink target too long": (lambda w: w.symlink("l", "a" * 2000), PackageTooLarge,
                                "target is 2000 bytes"),
    "directory with size": (lambda w: w.raw_entry(archive.DIRECTORY, 0o755, b"d", b"xx"),
                            BadFormat, "has a size"),
    "file shorter than declared": (lambda w: w.raw_entry(archive.FILE, 0o644, b"f", b"abc",
                                                         size=10),
                                   BadFormat, "truncated"),
    "data after end": (lambda w: (w.raw_entry(0, 0, b""), w.file("after", b"x")),
                       BadFormat, "after its end entry"),
    "nonzero end entry": (lambda w: w.raw_entry(0, 0o644, b""), BadFormat,
                          "not all zero"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_but_signed_archives(tmp_path, key, store, packages_dir, case):
    fill, error, fragment = CASES[case]

    def entries(w):
        hello_entries(w)
        fill(w)

    path = build_raw(tmp_path / "bad.spk", key, hello_manifest(), entries)
    with pytest.raises(error) as info:
        spk.verify_file(path, SMALL)
    assert fragment in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(error):
        install_package(store, packages_dir, path, SMALL)
    _assert_nothing_left(store, packages_dir)


def _assert_nothing_left(store, packages_dir):
    assert sorted(p.name for p in packages_dir.iterdir()) in ([], [".lock"])
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Package)) == 0
        assert s.scalar(select(func.count()).select_from(App)) == 0


def test_archive_without_end_entry(tmp_path, key, store, packages_dir):
    path = build_raw(tmp_path / "bad.spk", key, hello_manifest(), hello_entries, end=False)
    with pytest.raises(BadFormat, match="truncated"):
        install_package(store, packages_dir, path)
    _assert_nothing_left(store, packages_dir)


def test_archive_that_is_not_zstd(tmp_path, key):
    def not_zstd(out_path):
        manifest = hello_manifest().to_json_bytes()
        body = struct.pack(">IQ", len(manifest), 5) + manifest + b"hello"
        sig = key.sign(spk.signed_message(key.public_key, hashlib.sha256(body).digest()))
        out_path.write_bytes(b"\x89SPK\r\n\x1a\n\x00\x01\x00\x00" + key.public_key + sig + body)
        return out_path

    with pytest.raises(BadFormat, match="not a valid zstd stream"):
        spk.verify_file(not_zstd(tmp_path / "x.spk"))


@pytest.mark.parametrize(("manifest", "error", "fragment"), [
    (b"", InvalidManifest, "no manifest"),
    (b"{not json", InvalidManifest, "not valid UTF-8 JSON"),
    (b'{"app": {"title": "x"}}', InvalidManifest, "Manifest field 'app.version'"),
    (b" " * (300 * 1024), PackageTooLarge, "manifest is 307200 bytes"),
])
def test_missing_or_invalid_manifest(tmp_path, key, store, packages_dir, manifest, error,
                                     fragment):
    path = build_raw(tmp_path / "bad.spk", key, manifest, hello_entries)
    with pytest.raises(error, match=fragment):
        install_package(store, packages_dir, path)
    _assert_nothing_left(store, packages_dir)


def test_manifest_names_a_missing_or_large_icon(tmp_path, key, store, packages_dir):
    path = build_raw(tmp_path / "bad.spk", key, hello_manifest(),
                     lambda w: w.file("server.py", b"", 0o755))
    with pytest.raises(InvalidManifest, match="icons/hello.svg"):
        install_package(store, packages_dir, path)

    def big_icon(w):
        w.directory("icons")
        w.file("icons/hello.svg", bytes(300 * 1024))

    path = build_raw(tmp_path / "bad.spk", key, hello_manifest(), big_icon)
    with pytest.raises(PackageTooLarge, match="Icon"):
        install_package(store, packages_dir, path)
    _assert_nothing_left(store, packages_dir)


def test_package_past_the_size_limit(tmp_path, hello_spk, store, packages_dir):
    with pytest.raises(PackageTooLarge, match="the limit is 1000"):
        install_package(store, packages_dir, hello_spk, Limits(max_spk_bytes=1000))
    _assert_nothing_left(store, packages_dir)


def test_file_changed_after_verification(tmp_path, key):
    path = build_hello(tmp_path, key)
    with open(path, "rb") as f:
        pkg = spk.verify(f)
        data = bytearray(path.read_bytes())
        data[-1] ^= 1
        with open(path, "r+b") as w:  # same inode: the verified file object sees it
            w.write(data)
        with pytest.raises((BadSignature, BadFormat)):
            spk.extract_verified(pkg, TreeWriter(tmp_path / "tree", read_only=True))


def test_verification_streams_in_bounded_chunks(tmp_path, key):
    """A package far larger than one read is verified chunk by chunk: the file
    object is never asked for more than 1 MiB at a time."""
    big = bytes(range(256)) * (40 << 12)  # 40 MiB unpacked

    def entries(w):
        hello_entries(w)
        w.file("big.bin", big)

    path = build_raw(tmp_path / "big.spk", key, hello_manifest(), entries)
    reads = []

    class Recording:
        def __init__(self, f):
            self.f = f

        def read(self, n=-1):
            reads.append(n)
            return self.f.read(n)

        def __getattr__(self, name):
            return getattr(self.f, name)

    with open(path, "rb") as raw:
        pkg = spk.verify(Recording(raw))
        sink = archive.CheckOnly()
        spk.extract_verified(pkg, sink)
    assert sink.files["big.bin"] == len(big)
    assert max(reads) <= 1 << 20


def test_fifo_and_device_are_refused_without_blocking(tmp_path):
    import os
    fifo = tmp_path / "pipe.spk"
    os.mkfifo(fifo)
    with pytest.raises(BadFormat, match="not a regular file"):
        spk.verify_file(fifo)
    with pytest.raises(BadFormat, match="not a regular file"):
        spk.verify_file("/dev/zero")
