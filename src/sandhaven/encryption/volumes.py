"""Grain volumes: each grain's storage is a gocryptfs volume with its own key.

On the host, per grain::

    DATA_DIR/grains/<grain ID>/key       its password, wrapped by the KEK (see wrapped.py)
    DATA_DIR/grains/<grain ID>/cipher/   the gocryptfs ciphertext
    MOUNT_ROOT/<grain ID>/               the plaintext, mounted only while the grain runs

``MOUNT_ROOT`` (``RUNTIME/volumes``) is a root-only 0700 directory: no host user
and no other grain can reach a plaintext view; the grain's spawn helper, still
root, stages it as the grain's ``/var``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import structlog

from sandhaven.encryption import gocryptfs, wrapped
from sandhaven.encryption.kek import Kek
from sandhaven.errors import EncryptionError

log = structlog.get_logger("sandhaven.encryption")


class GrainVolumes:
    """Create, mount, unmount and destroy grain volumes under ``grains_dir``.

    ``allow_other`` must be True when grains run as another uid than the server
    (the server is root). Methods block (they run gocryptfs); call them from a
    thread in async code. Raises EncryptionError with one line.
    """

    def __init__(self, kek: Kek, grains_dir: Path, mount_root: Path, binary: str, *,
                 allow_other: bool) -> None:
        self.kek = kek
        self.grains_dir = Path(grains_dir)
        self.mount_root = Path(mount_root)
        self.binary = binary
        self.allow_other = allow_other

    @staticmethod
    def label(grain_id: str) -> str:
        return f"grain:{grain_id}"

    def key_path(self, grain_id: str) -> Path:
        return self.grains_dir / grain_id / "key"

    def cipher_dir(self, grain_id: str) -> Path:
        return self.grains_dir / grain_id / "cipher"

    def mountpoint(self, grain_id: str) -> Path:
        return self.mount_root / grain_id

    def create(self, grain_id: str) -> None:
        """A new, empty volume with a fresh random password (wrapped, then init)."""
        top = self.grains_dir / grain_id
        top.mkdir(mode=0o700, parents=True)
        try:
            password = wrapped.new_password()
            wrapped.create(self.key_path(grain_id), self.label(grain_id), password, self.kek)
            gocryptfs.init(self.binary, self.cipher_dir(grain_id), password)
        except BaseException:
            shutil.rmtree(top, ignore_errors=True)
            raise

    def mount(self, grain_id: str) -> Path:
        """Mount the grain's plaintext and return its mount point, checked to be a
        live mount: a grain never starts on the bare directory beneath it."""
        point = self.mountpoint(grain_id)
        if gocryptfs.is_mounted(point):
            return point
        gocryptfs.unmount(point)  # a dead daemon's mount, if any
        if not self.key_path(grain_id).exists():
            if (self.grains_dir / grain_id / "var").is_dir():
                raise EncryptionError(
                    f"Grain {grain_id} has unencrypted storage (made while "
                    "storage.encryption was off); it does not start with encryption on.")
            raise EncryptionError(f"Grain {grain_id} has no volume key "
                                  f"({self.key_path(grain_id)} is missing).")
        password = wrapped.unwrap(self.key_path(grain_id), self.label(grain_id), self.kek)
        self.mount_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.mount_root, 0o700)
        gocryptfs.mount(self.binary, self.cipher_dir(grain_id), point, password,
                        allow_other=self.allow_other)
        return point

    def mount_at(self, grain_id: str, point: Path) -> None:
        """Mount the grain's plaintext at ``point`` instead (a restore unpacks a
        backup straight into a new volume there); unmount with
        :func:`gocryptfs.unmount`."""
        password = wrapped.unwrap(self.key_path(grain_id), self.label(grain_id), self.kek)
        gocryptfs.mount(self.binary, self.cipher_dir(grain_id), point, password,
                        allow_other=self.allow_other)

    def unmount(self, grain_id: str) -> None:
        """Unmount the plaintext view (no-op when not mounted) and remove its mount point."""
        point = self.mountpoint(grain_id)
        gocryptfs.unmount(point)
        try:
            point.rmdir()
        except OSError:
            pass

    def shred(self, grain_id: str) -> None:
        """Crypto-shredding: unmount, destroy the wrapped password, then gocryptfs's
        own copy of the master key (its config, encrypted by that password). What is
        left of the ciphertext no longer opens with anything the server holds; the
        caller deletes it next."""
        self.unmount(grain_id)
        wrapped.shred(self.key_path(grain_id))
        wrapped.shred(self.cipher_dir(grain_id) / "gocryptfs.conf")
        log.info("grain_key_destroyed", grain_id=grain_id)

    def unmount_all(self) -> None:
        """Unmount every grain volume under the mount root (stale ones included)."""
        if not self.mount_root.is_dir():
            return
        for point in self.mount_root.iterdir():
            gocryptfs.unmount(point)
