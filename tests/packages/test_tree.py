"""check_tree: the installer's own check of a tree another process produced."""

import os

import pytest

from sandhaven.errors import PackageTooLarge, UnsafeEntry
from sandhaven.packages.limits import Limits
from sandhaven.packages.tree import TreeWriter, check_tree, remove_tree


def _tree(tmp_path):
    root = tmp_path / "tree"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_bytes(b"12345")
    (root / "l").symlink_to("d/f")
    return root


def test_a_good_tree(tmp_path):
    assert check_tree(_tree(tmp_path), Limits()) == (3, 5, {"d/f": 5})


@pytest.mark.parametrize(("spoil", "error", "fragment"), [
    (lambda r: (r / "d" / "f").chmod(0o4755), UnsafeEntry, "mode"),
    (lambda r: (r / "d").chmod(0o3755), UnsafeEntry, "mode"),
    (lambda r: os.link(r / "d" / "f", r / "hard"), UnsafeEntry, "hardlink"),
    (lambda r: os.mkfifo(r / "fifo"), UnsafeEntry, "not a file, directory or symlink"),
    (lambda r: (r / "out").symlink_to("/etc/passwd"), UnsafeEntry, "points outside"),
    (lambda r: (r / "d" / "up").symlink_to("../../x"), UnsafeEntry, "points outside"),
    (lambda r: (r / "bad\nname").write_text(""), UnsafeEntry, "name the format refuses"),
    (lambda r: (r / "big").write_bytes(bytes(100)), PackageTooLarge, "larger than"),
])
def test_what_a_subverted_unpacker_could_leave(tmp_path, spoil, error, fragment):
    root = _tree(tmp_path)
    spoil(root)
    with pytest.raises(error, match=fragment):
        check_tree(root, Limits(max_unpacked_bytes=50))


def test_entry_limit(tmp_path):
    with pytest.raises(PackageTooLarge, match="more than 2 entries"):
        check_tree(_tree(tmp_path), Limits(max_entries=2))


def test_remove_read_only_tree(tmp_path):
    writer = TreeWriter(tmp_path / "t", read_only=True)
    writer.directory("a", 0o755)
    writer.file("a/b", 0o644, 1, iter([b"x"]))
    writer.finish()
    assert oct((tmp_path / "t" / "a").stat().st_mode & 0o777) == "0o555"
    remove_tree(tmp_path / "t")
    assert not (tmp_path / "t").exists()
    remove_tree(tmp_path / "t")  # missing is fine
