"""The unpacking sandbox: its command line, what a process inside can and cannot
do, and installs with and without it."""

import errno
import os
import subprocess
import sys

import pytest

from sandhaven.errors import PackageError, UnsafeEntry
from sandhaven.packages import spk
from sandhaven.packages.install import install_package
from sandhaven.packages.limits import Limits
from sandhaven.packages.testing import build_raw, hello_entries, hello_manifest
from sandhaven.packages.unpack_sandbox import bwrap_argv, extract_sandboxed, find_bwrap


def test_bubblewrap_is_installed():
    # scripts/apt-packages.txt installs it; a machine without it must fail, not skip.
    assert find_bwrap() is not None


def test_command_line_reads_as_a_table_of_contents(tmp_path):
    argv = bwrap_argv("bwrap", tmp_path, 7, "ab" * 32, Limits())
    assert argv[:5] == ["bwrap", "--unshare-all", "--unshare-user", "--die-with-parent",
                        "--new-session"]
    assert "--share-net" not in argv and argv[argv.index("--cap-drop") + 1] == "ALL"
    writable = [argv[i + 1:i + 3] for i, a in enumerate(argv) if a == "--bind"]
    assert writable == [[str(tmp_path), "/out"]]
    assert "--clearenv" in argv and "--seccomp" not in argv
    with_filter = bwrap_argv("bwrap", tmp_path, 7, "ab" * 32, Limits(), seccomp_fd=9)
    assert with_filter[with_filter.index("--") - 2:with_filter.index("--")] == ["--seccomp", "9"]
    assert argv[argv.index("--") + 1:][1:4] == ["-m", "sandhaven.packages.unpack_sandbox", "7"]


def test_inside_the_sandbox(tmp_path):
    """Run a probe instead of the worker: no network, system read-only, the data
    directory invisible, only /out writable, the system-call filter loaded."""
    secret = tmp_path / "data" / "secret.key"
    secret.parent.mkdir()
    secret.write_text("k")
    out = tmp_path / "out"
    out.mkdir()
    probe = """
import os, socket, sys
def attempt(f):
    try:
        f(); return "ok"
    except OSError as e:
        return type(e).__name__
s = socket.socket()
s.settimeout(2)
print("net", attempt(lambda: s.connect(("1.1.1.1", 80))))
print("usr", attempt(lambda: open("/usr/sandhaven-probe", "w")))
print("secret", attempt(lambda: open(sys.argv[1]).read()))
print("out", attempt(lambda: open("/out/x", "w").write("x")))
print("uid", os.getuid())
import ctypes, platform
if platform.machine() == "x86_64":
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)
    libc.syscall(425, 1, params)  # io_uring_setup: the filter answers ENOSYS
    print("io_uring", ctypes.get_errno())
"""
    from sandhaven.sandbox import seccomp

    filter_fd = seccomp.filter_fd(seccomp.build_filter())
    argv = bwrap_argv(find_bwrap(), out, 0, "", Limits(), seccomp_fd=filter_fd)
    argv = argv[:argv.index("--") + 1] + [sys.executable, "-c", probe, str(secret)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                              pass_fds=(filter_fd,))
    finally:
        os.close(filter_fd)
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert lines["net"] != "ok" and lines["usr"] != "ok"
    assert lines["secret"] == "FileNotFoundError"
    assert lines["out"] == "ok" and (out / "x").read_text() == "x"
    assert lines["uid"] == "1000"
    if "io_uring" in lines:
        assert lines["io_uring"] == str(errno.ENOSYS)


def test_worker_errors_come_back_as_their_class(tmp_path, key):
    path = build_raw(tmp_path / "bad.spk", key, hello_manifest(),
                     lambda w: (hello_entries(w), w.file("../escape", b"x")))
    out = tmp_path / "out"
    out.mkdir()
    with spk.open_spk(path) as f:
        pkg = spk.verify(f)
        with pytest.raises(UnsafeEntry, match="'..' component"):
            extract_sandboxed(pkg, out, Limits())
    assert not (tmp_path / "escape").exists()


def test_changed_file_is_caught_inside(tmp_path, key):
    path = build_raw(tmp_path / "a.spk", key, hello_manifest(), hello_entries)
    out = tmp_path / "out"
    out.mkdir()
    with spk.open_spk(path) as f:
        pkg = spk.verify(f)
        data = bytearray(path.read_bytes())
        data[-2] ^= 1
        with open(path, "r+b") as w:
            w.write(data)
        with pytest.raises(PackageError):
            extract_sandboxed(pkg, out, Limits())


@pytest.mark.parametrize("sandboxed", [True, False])
def test_install_with_and_without_the_sandbox(tmp_path, key, store, packages_dir, sandboxed):
    good = build_raw(tmp_path / "good.spk", key, hello_manifest(), hello_entries)
    result = install_package(store, packages_dir, good, sandboxed=sandboxed)
    tree = packages_dir / result.package_id
    assert sorted(os.listdir(tree)) == ["icons", "server.py"]
    assert tree.stat().st_uid == os.getuid()
    bad = build_raw(tmp_path / "bad.spk", key, hello_manifest(version=2),
                    lambda w: (hello_entries(w), w.symlink("l", "/etc/shadow")))
    with pytest.raises(UnsafeEntry, match="points outside"):
        install_package(store, packages_dir, bad, sandboxed=sandboxed)
    assert sorted(p.name for p in packages_dir.iterdir()) == [".lock", result.package_id]
