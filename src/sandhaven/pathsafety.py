"""Tiny predicates for names that come from untrusted input and become paths.

Used wherever a package archive, a backup or a URL turns into a file name. A
*relative name* here is a ``/``-separated string such as ``"static/app.js"``:
never absolute, no empty, ``.`` or ``..`` components, no NUL and no control
characters (a newline in a file name breaks every line-oriented tool and log).

Each function answers one question and raises nothing; callers turn a ``False``
into their own error naming the input.
"""

from __future__ import annotations

import posixpath

# Linux limits a single component to 255 bytes (NAME_MAX).
NAME_MAX = 255


def bad_char(text: str) -> str | None:
    """The first character of ``text`` not allowed in a file name (NUL, C0 controls,
    DEL), or ``None`` when every character is allowed."""
    for ch in text:
        if ch < " " or ch == "\x7f":
            return ch
    return None


def is_safe_component(name: str, *, controls: bool = False) -> bool:
    """True for one path component: not empty, not ``.`` or ``..``, no ``/``, no
    NUL, no control character unless ``controls`` (a grain's own files may hold a
    newline in their names; a package's may not), at most ``NAME_MAX`` bytes of
    UTF-8."""
    if name in ("", ".", "..") or "/" in name or "\x00" in name:
        return False
    if not controls and bad_char(name) is not None:
        return False
    try:
        return len(name.encode("utf-8")) <= NAME_MAX
    except UnicodeEncodeError:  # lone surrogates from a lossy decode
        return False


def is_safe_relative(path: str, *, controls: bool = False) -> bool:
    """True when ``path`` is a relative name whose every component is safe
    (``controls`` as for ``is_safe_component``)."""
    return bool(path) and not path.startswith("/") and all(
        is_safe_component(part, controls=controls) for part in path.split("/")
    )


def depth(path: str) -> int:
    """Number of components of a relative name (``"a/b"`` is 2)."""
    return path.count("/") + 1


def symlink_stays_inside(link: str, target: str) -> bool:
    """True when a symlink named ``link`` (a safe relative name) with contents
    ``target`` can only resolve inside the tree that holds it.

    The rule is stricter than lexical normalisation so that chains of links
    cannot escape: ``target`` must be relative, made of zero or more leading
    ``..`` followed by safe components, with no more ``..`` than the link's
    directory depth. Whatever the other links in the tree point to, each one
    then resolves from a real directory inside the tree and stays inside.
    """
    if not target or target.startswith("/") or bad_char(target) is not None:
        return False
    parts = target.split("/")
    ups = 0
    while ups < len(parts) and parts[ups] == "..":
        ups += 1
    rest = parts[ups:]
    if not rest or not all(is_safe_component(p) for p in rest):
        return False
    return ups <= depth(link) - 1


def is_within(root: str, candidate: str) -> bool:
    """True when the absolute, already-resolved path ``candidate`` is ``root`` or
    lies below it. Both must be normalised (``os.path.realpath``) by the caller."""
    root = posixpath.normpath(root)
    candidate = posixpath.normpath(candidate)
    return candidate == root or candidate.startswith(root.rstrip("/") + "/")
