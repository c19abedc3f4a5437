"""The curated ``/etc`` every grain sees, read-only.

Field notes: most apps need no ``/etc`` at all; MariaDB needs a name for uid
1000, PHP needs ``/etc/php``, unversioned commands need ``/etc/alternatives``,
TLS clients need CA certificates, and a time zone avoids surprises. Nothing
else from the host's ``/etc`` is visible (no shadow, no host names, no
resolver).
"""

from __future__ import annotations

import os
from pathlib import Path

from sandhaven.sandbox.layout import GRAIN_GID, GRAIN_UID, HOSTNAME

# Host directories bound read-only over the curated tree when the host has them.
# PHP reads its php.ini and the list of extensions to load from /etc/php (field
# notes: without it no extension loads, so no SQLite, mbstring or XML); it holds
# no secrets and is only read.
HOST_ETC_DIRS = ("ssl/certs", "alternatives", "php")

FILES: dict[str, str] = {
    "passwd": (
        f"root:x:0:0:root:/:/usr/sbin/nologin\n"
        f"grain:x:{GRAIN_UID}:{GRAIN_GID}:grain:/var:/usr/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    ),
    "group": f"root:x:0:\ngrain:x:{GRAIN_GID}:\nnogroup:x:65534:\n",
    "hosts": f"127.0.0.1 localhost {HOSTNAME}\n::1 localhost ip6-localhost ip6-loopback\n",
    "hostname": f"{HOSTNAME}\n",
    # No name service inside a grain: lookups go to the grain's own loopback,
    # where nothing answers, and fail fast.
    "resolv.conf": "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
    "timezone": "Etc/UTC\n",
}


def write_etc(target: Path) -> None:
    """Create the curated tree at ``target`` (a fresh directory, mode 0755).

    Also creates the empty mount points for :data:`HOST_ETC_DIRS` and the
    ``localtime`` link. Raises OSError when ``target`` cannot be written.
    """
    target.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(target, 0o755)
    for name, text in FILES.items():
        path = target / name
        path.write_text(text, encoding="utf-8")
        os.chmod(path, 0o644)
    for sub in HOST_ETC_DIRS:
        (target / sub).mkdir(mode=0o755, parents=True, exist_ok=True)
    link = target / "localtime"
    if not link.is_symlink():
        link.symlink_to("/usr/share/zoneinfo/Etc/UTC")
    for dirpath, dirnames, _ in os.walk(target):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)


def host_etc_binds() -> list[tuple[str, str]]:
    """``(host path, path inside)`` pairs for the host ``/etc`` parts that exist."""
    return [(f"/etc/{sub}", f"/etc/{sub}") for sub in HOST_ETC_DIRS if os.path.isdir(f"/etc/{sub}")]
