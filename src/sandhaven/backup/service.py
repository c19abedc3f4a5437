"""Backing up and restoring grains (issue: grain backups that move between
servers). The owner backs a grain up into one zip (``writer``); a restore checks
the whole file in the worker sandbox, checks the app, the owner's quota and the
disk, unpacks in the sandbox again into a staging directory, and only then makes
a new grain — so a bad file, a full disk or a killed server leaves no grain and
no files behind (``clean_staging`` removes what a kill interrupted).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import stat
import tempfile
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import structlog
from sqlalchemy import select

from sandhaven.backup import encryption
from sandhaven.backup import format as fmt
from sandhaven.backup.writer import write_backup
from sandhaven.encryption import gocryptfs
from sandhaven.errors import (
    AppNeeded,
    BadBackup,
    Forbidden,
    NotFound,
    SandboxUnavailable,
    SandhavenError,
    StorageFull,
)
from sandhaven.grains.service import Grains, GrainView, clean_title
from sandhaven.sandbox.worker import run_worker
from sandhaven.store import Store, new_id, utcnow
from sandhaven.store.models import App, Grain, GrainIdentity, Package, User

log = structlog.get_logger("sandhaven.backup")
STAGING_PREFIX = ".restore-"
TARGET = "target"  # in a staging directory: the ID of the grain volume being filled
#: What a restore counts on the disk beyond the file data: a block per entry
#: (directories, inodes, symlinks) and a little room for the store (bytes).
ENTRY_BYTES = 4096
DISK_MARGIN = 1024 * 1024


class GrainBackups:
    """Backups of one server's grains. ``quota_bytes`` per user (0: no limit);
    ``read_log(grain_id)`` gives a grain's log; ``log_dir`` receives restored logs;
    ``check_access(user_id, grain_id)`` raises NotFound unless the user may see the
    grain (a share holder learns they may not back it up; others learn nothing);
    ``grain_uid()`` is the host user grains run as (None: the server's own), who
    gets the restored files."""

    def __init__(self, store: Store, grains: Grains, *, quota_bytes: Callable[[], int],
                 tmp_dir: Path, read_log: Callable[[str], str] | None = None,
                 log_dir: Path | None = None,
                 check_access: Callable[[str, str], object] | None = None,
                 grain_uid: Callable[[], int | None] | None = None) -> None:
        self.store, self.grains = store, grains
        self.grain_uid = grain_uid
        self.tmp_dir = tmp_dir
        self.check_access = check_access
        self.quota_bytes = quota_bytes
        self.read_log = read_log
        self.log_dir = log_dir

    # -- backup ----------------------------------------------------------------
    def check_owner(self, user_id: str, grain_id: str) -> GrainView:
        """The grain, if ``user_id`` owns it. Raises NotFound (no such grain) or
        Forbidden (someone else's grain this user can see)."""
        view = self.grains.view(grain_id)
        if view.owner_id != user_id:
            if self.check_access is None:
                raise NotFound(f"No grain with ID {grain_id[:40]!r}.")
            self.check_access(user_id, grain_id)
            raise Forbidden("Only the owner of a grain can back it up.")
        return view

    def temp_file(self) -> BinaryIO:
        """An anonymous temporary file in the server's temp directory (gone on close,
        and after a kill)."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return tempfile.TemporaryFile(dir=self.tmp_dir, prefix=".backup-")

    async def backup(self, user_id: str, grain_id: str, out: BinaryIO,
                     passphrase: str | None = None) -> fmt.Metadata:
        """Write the backup of ``grain_id`` to ``out`` (seekable); with a
        ``passphrase``, encrypted (``sandhaven.backup.encryption``). The grain is
        stopped for the copy and kept from starting until it is done (requests
        wait); the copy runs in a thread, so other grains and requests go on.
        Raises NotFound, Forbidden, BadBackup (passphrase), and SandhavenError for a
        tree a backup cannot hold."""
        view = self.check_owner(user_id, grain_id)
        if passphrase is not None:
            encryption.check_passphrase(passphrase)
        base = self._base(view)
        text = self.read_log(grain_id) if self.read_log else ""
        with contextlib.ExitStack() as stack:
            target = out if passphrase is None else stack.enter_context(self.temp_file())
            async with self.grains.held_stopped(grain_id) as storage:
                meta = await asyncio.to_thread(write_backup, storage, text.encode(), base,
                                               target)
            if passphrase is not None:
                target.flush()
                await asyncio.to_thread(encryption.encrypt, target, out, passphrase)
        log.info("grain_backed_up", grain_id=grain_id, entries=len(meta.files),
                 data_bytes=meta.data_bytes)
        return meta

    def _base(self, view: GrainView) -> dict[str, Any]:
        with self.store.read() as s:
            package = s.get(Package, view.package_id)
            rows = s.execute(select(User.email, User.name, GrainIdentity.identity_id)
                             .join(User, User.id == GrainIdentity.user_id)
                             .where(GrainIdentity.grain_id == view.id)).all()
        assert package is not None  # RESTRICT foreign key
        return {
            "app_id": view.app_id, "app_title": view.app_title[:200],
            "app_version": package.version,
            "marketing_version": package.marketing_version[:100],
            "package_id": package.id, "title": view.title, "created_at": view.created_at,
            "backed_up_at": utcnow(),
            "identities": [fmt.Identity(email=e, name=n[:200], identity_id=i)
                           for e, n, i in rows],
        }

    # -- restore ---------------------------------------------------------------
    async def restore(self, user_id: str, backup: BinaryIO,
                      passphrase: str | None = None) -> GrainView:
        """Make a new grain owned by ``user_id`` from the backup file ``backup`` (an open
        file with a file descriptor: the sandboxed worker reads it through that);
        an encrypted backup needs its ``passphrase``.

        Raises BadBackup (any flaw in the file, a missing or wrong passphrase),
        AppNeeded (the app is not installed at the backup's version or newer),
        StorageFull (quota or disk), SandboxUnavailable. Nothing is left behind on
        failure."""
        if not stat.S_ISREG(os.fstat(backup.fileno()).st_mode):
            raise BadBackup("A backup must be a regular file (a zip archive, or one "
                            "encrypted with a passphrase); this is a device, pipe or directory.")
        if await asyncio.to_thread(encryption.is_encrypted, backup):
            if not passphrase:
                raise BadBackup("This backup is encrypted: give its passphrase.")
            with self.temp_file() as plain:
                await asyncio.to_thread(encryption.decrypt, backup, plain, passphrase)
                plain.seek(0)
                return await self._restore(user_id, plain)
        return await self._restore(user_id, backup)

    async def _restore(self, user_id: str, backup: BinaryIO) -> GrainView:
        self.grains.check_volumes()
        summary = await asyncio.to_thread(self._worker, backup, "inspect", None)
        summary = summary["summary"]
        package = self._package_for(summary)
        self._check_room(user_id, int(summary["data_bytes"]), int(summary["entries"]))
        staging = self._staging()
        grain_id = new_id()
        target = self.grains.grains_dir / grain_id
        volumes = self.grains.volumes
        try:
            if volumes is None:
                answer = await asyncio.to_thread(self._worker, backup, "unpack", staging)
                await asyncio.to_thread(self._own, staging / "var")
                os.rename(staging, target)
            else:
                # Encryption at rest: unpack straight into the new grain's volume,
                # mounted where the worker writes; no plaintext reaches the disk. The
                # staging directory names the volume, so that a start after a kill
                # can destroy it (clean_staging).
                (staging / TARGET).write_text(grain_id)
                await asyncio.to_thread(volumes.create, grain_id)
                await asyncio.to_thread(volumes.mount_at, grain_id, staging / "var")
                try:
                    answer = await asyncio.to_thread(self._worker, backup, "unpack", staging)
                    await asyncio.to_thread(self._own, staging / "var")
                finally:
                    await asyncio.to_thread(gocryptfs.unmount, staging / "var")
                shutil.rmtree(staging)
            self._insert(user_id, grain_id, package, summary)
        except BaseException:
            with contextlib.suppress(OSError):
                gocryptfs.unmount(staging / "var")
            if volumes is not None and (target / "key").exists():
                volumes.shred(grain_id)
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(target, ignore_errors=True)
            raise
        self._restore_log(grain_id, base64.b64decode(answer.get("log", "")))
        log.info("grain_restored", grain_id=grain_id, app_id=package.app_id,
                 data_bytes=answer.get("bytes"))
        return self.grains.get(user_id, grain_id)

    def _own(self, tree: Path) -> None:
        """Give every unpacked entry to the grain's user. The worker wrote them as
        the server's user; a server running as root runs grains as
        ``sandbox.grain_uid``, which must own its files to change them. Links are
        never followed."""
        uid = self.grain_uid() if self.grain_uid else None
        if uid is None:
            return
        os.lchown(tree, uid, uid)
        for dirpath, dirnames, filenames in os.walk(tree):
            for name in dirnames + filenames:
                os.lchown(os.path.join(dirpath, name), uid, uid)

    def _worker(self, backup: BinaryIO, mode: str, staging: Path | None) -> dict[str, Any]:
        fd = backup.fileno()
        args = [mode, str(fd)] + (["/out/var"] if staging is not None else [])
        out = staging if staging is not None else self._staging()
        try:
            answer, detail = run_worker("sandhaven.backup.restore_worker", args, out, (fd,))
        finally:
            if staging is None:
                shutil.rmtree(out, ignore_errors=True)
        if answer is None:
            raise SandboxUnavailable(f"The restore sandbox failed: {detail}")
        if not answer.get("ok"):
            message = str(answer.get("message", "the backup was refused"))
            raise StorageFull(message) if answer.get("error") == "StorageFull" else BadBackup(
                message)
        return answer

    def _staging(self) -> Path:
        """A new empty directory among the grains (same file system: the finished
        tree is renamed into place), removed at start if a kill leaves it."""
        staging = self.grains.grains_dir / f"{STAGING_PREFIX}{secrets.token_hex(8)}"
        staging.mkdir(parents=True, mode=0o700)
        return staging

    def _package_for(self, summary: dict[str, Any]) -> Package:
        app_id, version = summary["app_id"], int(summary["app_version"])
        with self.store.read() as s:
            package = s.scalars(select(Package).where(Package.app_id == app_id)
                                .order_by(Package.version.desc())).first()
            app = s.get(App, app_id)
        name = (app.title if app else summary.get("app_title")) or "the app"
        wanted = summary.get("marketing_version") or f"version {version}"
        if package is None:
            raise AppNeeded(f"This backup needs {name!r} {wanted} or newer (app ID "
                            f"{app_id}); install it first.")
        if package.version < version:
            raise AppNeeded(f"This backup needs {name!r} {wanted} or newer; version "
                            f"{package.marketing_version or package.version} is installed. "
                            "Update the app first.")
        return package

    def _check_room(self, user_id: str, data_bytes: int, entries: int) -> None:
        quota = self.quota_bytes()
        if quota:
            used = self.grains.usage(user_id)
            if used + data_bytes > quota:
                raise StorageFull(f"Restoring needs {_mib(data_bytes)} MiB; you use "
                                  f"{_mib(used)} of your {_mib(quota)} MiB.")
        free = shutil.disk_usage(self.grains.grains_dir).free
        if data_bytes + entries * ENTRY_BYTES + DISK_MARGIN > free:
            raise StorageFull(f"Restoring needs {_mib(data_bytes)} MiB; the server's disk "
                              f"has {_mib(free)} MiB free.")

    def _insert(self, user_id: str, grain_id: str, package: Package,
                summary: dict[str, Any]) -> None:
        with self.store.session() as s:
            s.add(Grain(id=grain_id, owner_id=user_id, app_id=package.app_id,
                        package_id=package.id, title=_title(summary["title"]),
                        action_index=0, created_at=utcnow(), size_bytes=0, initialized=True))
            s.flush()
            restorer = s.get(User, user_id)
            for ident in summary.get("identities", []):
                user = s.scalar(select(User).where(User.email == ident["email"]))
                # Whoever uploads the file chooses these IDs: a user keeps theirs
                # only when restoring themselves, or when an admin moves grains.
                if user is None or not (user.id == user_id or (restorer and restorer.is_admin)):
                    continue
                taken = s.scalar(select(GrainIdentity.id).where(
                    GrainIdentity.identity_id == ident["identity_id"]))
                if user is not None and taken is None:
                    s.add(GrainIdentity(grain_id=grain_id, user_id=user.id,
                                        identity_id=ident["identity_id"], created_at=utcnow()))

    def _restore_log(self, grain_id: str, data: bytes) -> None:
        if self.log_dir is None or not data:
            return
        directory = self.log_dir / grain_id
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        (directory / "log.1").write_bytes(data)

    def clean_staging(self) -> int:
        """Remove what a killed restore left behind: its staging directory (unmounted
        first, when a volume was mounted there) and the half-made grain volume it
        names, unless that grain exists. Returns how many staging directories went.
        Call at start, before anything restores."""
        grains_dir = self.grains.grains_dir
        if not grains_dir.is_dir():
            return 0
        stale = [p for p in grains_dir.iterdir() if p.name.startswith(STAGING_PREFIX)]
        for path in stale:
            with contextlib.suppress(OSError):
                gocryptfs.unmount(path / "var")
            if gocryptfs.is_mounted(path / "var"):
                continue  # never delete through a mount; the next start tries again
            with contextlib.suppress(OSError, ValueError):
                self._drop_half_made(path / TARGET)
            shutil.rmtree(path, ignore_errors=True)
        return len(stale)

    def _drop_half_made(self, marker: Path) -> None:
        grain_id = marker.read_text()[:40]
        if not grain_id.isalnum():
            return
        with self.store.read() as s:
            if s.get(Grain, grain_id) is not None:
                return
        target = self.grains.grains_dir / grain_id
        if self.grains.volumes is not None and (target / "key").exists():
            self.grains.volumes.shred(grain_id)
        shutil.rmtree(target, ignore_errors=True)


def _mib(n: int) -> int:
    return -(-n // (1024 * 1024))


def _title(raw: str) -> str:
    try:
        return clean_title(raw)
    except SandhavenError:
        return "Restored grain"


def download_name(title: str, suffix: str = ".zip") -> str:
    """A ``Content-Disposition`` value for a backup of a grain titled ``title``: an
    ASCII ``filename`` (anything else replaced) and the exact UTF-8 name as
    ``filename*`` (RFC 6266 / RFC 8187), whatever quotes or newlines the title holds."""
    base = "".join(ch if ch.isprintable() and ch not in '/\\"' else "_" for ch in title)
    base = base.strip(" .") or "grain"
    base = base[:100]
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    ascii_name = "".join(ch if ch.isalnum() or ch in " -_.()" else "_" for ch in ascii_name)
    ascii_name = ascii_name.strip(" _.") or "grain"
    return (f'attachment; filename="{ascii_name}{suffix}"; '
            f"filename*=UTF-8''{quote(base + suffix, safe='')}")
