import pytest

from sandhaven import pathsafety


@pytest.mark.parametrize(("path", "safe"), [
    ("a", True), ("a/b.txt", True), ("é/ü", True), ("." + "x" * 254, True),
    ("", False), ("/a", False), ("a/", False), ("a//b", False), ("./a", False),
    ("a/..", False), ("../a", False), ("a\x00b", False), ("a\nb", False), ("a\rb", False),
    ("a\x7fb", False), ("x" * 256, False), ("a\udcff", False),
])
def test_is_safe_relative(path, safe):
    assert pathsafety.is_safe_relative(path) is safe


@pytest.mark.parametrize(("link", "target", "inside"), [
    ("l", "a", True), ("l", "a/b", True), ("d/l", "../a", True), ("d/e/l", "../../a", True),
    ("l", "../a", False), ("d/l", "../../a", False), ("l", "/etc/passwd", False),
    ("d/l", "a/../../x", False), ("d/l", "..", False), ("l", ".", False), ("l", "", False),
    ("l", "a/", False), ("l", "a\nb", False),
])
def test_symlink_stays_inside(link, target, inside):
    assert pathsafety.symlink_stays_inside(link, target) is inside


def test_is_within():
    assert pathsafety.is_within("/srv/p", "/srv/p")
    assert pathsafety.is_within("/srv/p", "/srv/p/a")
    assert not pathsafety.is_within("/srv/p", "/srv/pa")
    assert not pathsafety.is_within("/srv/p", "/srv")
    assert pathsafety.depth("a/b/c") == 3
