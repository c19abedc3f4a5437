"""Property tests: any mutation of a valid package is either refused with a
PackageError or verifies to exactly the original content; validly signed
archives of random entries either are refused cleanly or unpack to a tree that
stays inside its directory. No other exception escapes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sandhaven.errors import PackageError
from sandhaven.packages import archive, spk
from sandhaven.packages.keys import SigningKey
from sandhaven.packages.limits import Limits
from sandhaven.packages.testing import build_hello, build_raw, hello_manifest
from sandhaven.packages.tree import TreeWriter, remove_tree

WORK = Path(tempfile.mkdtemp(prefix="sandhaven-props-"))
KEY = SigningKey.generate()
ORIGINAL = build_hello(WORK, KEY).read_bytes()
LIMITS = Limits(max_unpacked_bytes=1 << 20, max_entries=64)


def _unpack(data: bytes) -> dict[str, bytes | str]:
    """Verify and unpack ``data``; returns {path: file bytes or 'dir' or '-> target'}."""
    fd, name = tempfile.mkstemp(dir=WORK, suffix=".spk")
    os.write(fd, data)
    os.close(fd)
    out = Path(tempfile.mkdtemp(dir=WORK)) / "tree"
    try:
        with open(name, "rb") as f:
            pkg = spk.verify(f, LIMITS)
            writer = TreeWriter(out, read_only=False)
            spk.extract_verified(pkg, writer, LIMITS)
        return _snapshot(out)
    finally:
        os.unlink(name)
        remove_tree(out.parent)


def _snapshot(root: Path) -> dict[str, bytes | str]:
    real_root = os.path.realpath(root)
    found: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = str(full.relative_to(root))
            if full.is_symlink():
                resolved = os.path.realpath(full)
                assert resolved == real_root or resolved.startswith(real_root + "/"), rel
                found[rel] = "-> " + os.readlink(full)
            elif full.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = full.read_bytes()
    return found


ORIGINAL_TREE = _unpack(ORIGINAL)


def _mutations():
    n = len(ORIGINAL)
    index = st.integers(0, n - 1)
    return st.one_of(
        st.tuples(st.just("flip"), index, st.integers(1, 255)),
        st.tuples(st.just("truncate"), st.integers(0, n - 1), st.just(0)),
        st.tuples(st.just("insert"), index, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("delete"), index, st.integers(1, 64)),
        st.tuples(st.just("overwrite"), index, st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("append"), st.just(0), st.binary(min_size=1, max_size=64)),
    )


def _apply(data: bytes, mutation) -> bytes:
    kind, i, arg = mutation
    i = min(i, len(data))  # earlier mutations may have shortened the file
    if kind == "flip":
        if i == len(data):
            return data
        return data[:i] + bytes([data[i] ^ arg]) + data[i + 1:]
    if kind == "truncate":
        return data[:i]
    if kind == "insert":
        return data[:i] + arg + data[i:]
    if kind == "delete":
        return data[:i] + data[i + arg:]
    if kind == "overwrite":
        return data[:i] + arg + data[i + len(arg):]
    return data + arg


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_mutations(), min_size=1, max_size=3))
def test_mutated_packages_are_refused_or_identical(mutations):
    data = ORIGINAL
    for m in mutations:
        data = _apply(data, m)
    try:
        tree = _unpack(data)
    except PackageError as exc:
        assert "\n" not in str(exc)
        assert data != ORIGINAL
        return
    assert tree == ORIGINAL_TREE
    assert data == ORIGINAL  # anything else accepted would be a forgery


# Mostly plausible names so that many archives are accepted and their trees checked;
# now and then '..', empty, NUL, newline or a hostile type or mode.
COMPONENT = st.sampled_from(["a"] * 6 + ["b"] * 6 + ["c"] * 4 + ["é"] * 2
                            + ["..", "", ".", "\x00", "\n"])
NAMES = st.lists(COMPONENT, min_size=1, max_size=3).map("/".join)
ENTRY = st.tuples(
    st.sampled_from([archive.FILE] * 4 + [archive.DIRECTORY] * 4 + [archive.SYMLINK] * 3
                    + [ord("1"), ord("6")]),
    st.sampled_from([0o644] * 5 + [0o755] * 5 + [0o4755, 0o2755, 0o1777]),
    NAMES,
    NAMES,
    st.binary(max_size=32),
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.lists(ENTRY, max_size=8, unique_by=lambda e: e[2]), st.booleans())
def test_signed_random_archives_never_escape(entries, add_parents):
    def fill(w: archive.ArchiveWriter) -> None:
        written: set[str] = set()
        for type_, mode, path, target, content in entries:
            parts = path.split("/")
            for i in range(1, len(parts) if add_parents else 1):
                parent = "/".join(parts[:i])
                if parent not in written and not any(e[2] == parent for e in entries):
                    w.directory(parent)
                    written.add(parent)
            written.add(path)
            data = {archive.DIRECTORY: b"", archive.SYMLINK: target.encode()}.get(type_, content)
            w.raw_entry(type_, mode, path.encode("utf-8"), data)

    out = Path(tempfile.mkdtemp(dir=WORK)) / "x.spk"
    build_raw(out, KEY, hello_manifest().model_copy(
        update={"metadata": hello_manifest().metadata.model_copy(
            update={"icons": hello_manifest().metadata.icons.model_copy(
                update={"app_grid": None, "grain": None, "market": None})})}), fill)
    try:
        tree = _unpack(out.read_bytes())  # _snapshot asserts every symlink resolves inside
        event(f"accepted with {len(tree)} entries")
    except PackageError as exc:
        event(f"refused: {type(exc).__name__}")
        assert "\n" not in str(exc)
    finally:
        remove_tree(out.parent)


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    remove_tree(WORK)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
HELLO_RAW = hello_manifest().model_dump(mode="json")


def _paths(value, prefix=()):  # type: ignore[no-untyped-def]
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


MANIFEST_PATHS = [p for p in _paths(HELLO_RAW) if p]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(MANIFEST_PATHS), JSON)
def test_any_field_replaced_by_any_json_is_valid_or_one_clean_error(path, value):
    import copy
    import json

    from sandhaven.errors import InvalidManifest
    from sandhaven.packages.manifest import Manifest

    raw = copy.deepcopy(HELLO_RAW)
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        manifest = Manifest.from_json_bytes(json.dumps(raw).encode())
    except InvalidManifest as exc:
        assert "\n" not in str(exc)
        assert str(exc).startswith(("Manifest field '", "The manifest is not"))
        return
    assert Manifest.from_json_bytes(manifest.to_json_bytes()) == manifest
