import os
import shutil
import socket
import stat

import pytest

from sandhaven.errors import InvalidManifest, PackageTooLarge, UnsafeEntry
from sandhaven.packages.limits import Limits
from sandhaven.packages.pack import pack
from sandhaven.packages.spk import verify_file
from sandhaven.packages.testing import hello_source


def _no_temp_files(directory):
    return [p.name for p in directory.iterdir() if p.name.startswith(".spk-")] == []


def test_packing_is_reproducible(tmp_path, key):
    src = hello_source(tmp_path / "src")
    first = pack(src, key, tmp_path / "a.spk")
    # Another copy of the same tree: other inodes, other mtimes, other directory order.
    other = tmp_path / "elsewhere"
    shutil.copytree(src, other)
    os.utime(other / "server.py", (0, 0))
    (other / "unrelated.txt").write_text("not included")
    second = pack(other, key, tmp_path / "b.spk")
    assert first.package_id == second.package_id
    assert (tmp_path / "a.spk").read_bytes() == (tmp_path / "b.spk").read_bytes()


def test_another_key_is_another_app(tmp_path, key, other_key):
    src = hello_source(tmp_path / "src")
    a = pack(src, key, tmp_path / "a.spk")
    b = pack(src, other_key, tmp_path / "b.spk")
    assert a.app_id != b.app_id and a.package_id != b.package_id


def test_selection_and_excludes(tmp_path, key):
    src = hello_source(tmp_path / "src")
    (src / "icons" / "__pycache__").mkdir()
    (src / "icons" / "__pycache__" / "x.pyc").write_bytes(b"junk")
    (src / "icons" / "old.pyc").write_bytes(b"junk")
    (src / "notes.txt").write_text("left out")
    result = pack(src, key, tmp_path / "a.spk")
    assert result.entries == 3  # server.py, icons/, icons/hello.svg
    out = tmp_path / "tree"
    from sandhaven.cli.main import main
    assert main(["unpack", str(tmp_path / "a.spk"), str(out)]) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == \
        ["icons", "icons/hello.svg", "server.py"]
    assert stat.S_IMODE((out / "server.py").stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "icons" / "hello.svg").stat().st_mode) == 0o644


def test_symlink_inside_is_kept(tmp_path, key):
    src = hello_source(tmp_path / "src")
    (src / "icons" / "link.svg").symlink_to("hello.svg")
    (src / "icons" / "up.py").symlink_to("../server.py")
    pack(src, key, tmp_path / "a.spk")
    assert verify_file(tmp_path / "a.spk")["title"] == "Hello"


def _make_fifo(path):
    os.mkfifo(path)


def _make_socket(path):
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()


def _make_setuid(path):
    path.write_text("x")
    path.chmod(0o4755)


def _make_setgid(path):
    path.write_text("x")
    path.chmod(0o2755)


def _make_escaping_link(path):
    path.symlink_to("/etc/passwd")


def _make_parent_link(path):
    path.symlink_to("../../outside")


def _make_device(path):
    # The suite runs as root (it needs bubblewrap and cgroups), so mknod works.
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))


@pytest.mark.parametrize(("make", "message"), [
    (_make_fifo, "is a FIFO"),
    (_make_socket, "is a socket"),
    (_make_device, "is a device file"),
    (_make_setuid, "setuid"),
    (_make_setgid, "setgid"),
    (_make_escaping_link, "points outside"),
    (_make_parent_link, "points outside"),
])
def test_source_entries_the_format_refuses(tmp_path, key, make, message):
    src = hello_source(tmp_path / "src")
    make(src / "icons" / "bad")
    with pytest.raises(UnsafeEntry, match=message):
        pack(src, key, tmp_path / "a.spk")
    assert not (tmp_path / "a.spk").exists()
    assert _no_temp_files(tmp_path)


def test_newline_in_a_source_name(tmp_path, key):
    src = hello_source(tmp_path / "src")
    (src / "icons" / "bad\nname").write_text("x")
    with pytest.raises(UnsafeEntry, match="newline"):
        pack(src, key, tmp_path / "a.spk")


def test_include_that_does_not_exist(tmp_path, key):
    src = hello_source(tmp_path / "src")
    (src / "server.py").unlink()
    with pytest.raises(InvalidManifest, match="'server.py' does not exist"):
        pack(src, key, tmp_path / "a.spk")


def test_icon_must_be_packed_and_small(tmp_path, key):
    src = hello_source(tmp_path / "src")
    (src / "icons" / "hello.svg").write_bytes(b"<svg/>" + b" " * 300_000)
    with pytest.raises(PackageTooLarge, match="Icon 'icons/hello.svg'"):
        pack(src, key, tmp_path / "a.spk")
    (src / "icons" / "hello.svg").unlink()
    (src / "icons" / "other.svg").write_text("<svg/>")
    with pytest.raises(InvalidManifest, match="icons/hello.svg"):
        pack(src, key, tmp_path / "a.spk")


def test_limits_apply_when_packing(tmp_path, key):
    src = hello_source(tmp_path / "src")
    for i in range(5):
        (src / "icons" / f"{i}.txt").write_text("x")
    with pytest.raises(PackageTooLarge, match="more than 4 entries"):
        pack(src, key, tmp_path / "a.spk", Limits(max_entries=4))
    with pytest.raises(PackageTooLarge, match="unpack to"):
        pack(src, key, tmp_path / "a.spk", Limits(max_unpacked_bytes=100))


def test_unwritable_output(tmp_path, key):
    from sandhaven.errors import InvalidInput

    src = hello_source(tmp_path / "src")
    with pytest.raises(InvalidInput, match="cannot be written"):
        pack(src, key, tmp_path / "no" / "such" / "dir" / "a.spk")


def test_hardlinked_source_files_are_packed_as_separate_files(tmp_path, key):
    src = hello_source(tmp_path / "src")
    os.link(src / "icons" / "hello.svg", src / "icons" / "twin.svg")
    pack(src, key, tmp_path / "a.spk")
    from sandhaven.cli.main import main
    assert main(["unpack", str(tmp_path / "a.spk"), str(tmp_path / "tree")]) == 0
    twin = tmp_path / "tree" / "icons" / "twin.svg"
    assert twin.read_bytes() == (src / "icons" / "hello.svg").read_bytes()
    assert twin.stat().st_nlink == 1
