"""Installing verified packages into a read-only, content-addressed directory.

Layout: ``DATA_DIR/packages/<package ID>/`` is the package tree (mounted at
``/opt/app`` in grains): directories 0555, files 0444 or 0555, owned by the
server. The store's ``apps`` and ``packages`` rows describe what is installed;
a directory without a row is never used (it is replaced on the next install).

Install, step by step:

1. verify the ``.spk`` (signature before anything else) — ``spk.verify``;
2. refuse early what the store already rules out (a version not newer);
3. extract into a private temporary directory beside the final one, every entry
   checked by ``archive.walk``, the file re-hashed against the signature — in a
   bubblewrap sandbox (``unpack_sandbox``) — then check the tree on disk again
   (``tree.check_tree``);
4. under an exclusive lock on ``packages/.lock``: check the store again, rename
   the tree into place and insert the rows; undo the rename if the store fails.

Failure at any step removes the temporary tree, so nothing is left on disk or
in the store. Two installs may extract at the same time; only step 4 is
serialised, across threads and processes (``flock``).

Versions: the same package ID again is a no-op; a new package of an installed
app must carry a higher ``app.version`` and keep every permission and role
position (``manifest.check_update_keeps_positions``); the older version stays
installed beside it until uninstalled.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sandhaven import pathsafety
from sandhaven.errors import Conflict, InvalidInput, NotFound, NotNewer, PackageInUse
from sandhaven.packages import spk, unpack_sandbox
from sandhaven.packages.ids import is_package_id
from sandhaven.packages.limits import Limits
from sandhaven.packages.manifest import Manifest, check_update_keeps_positions
from sandhaven.packages.tree import TreeWriter, check_tree, remove_tree
from sandhaven.store import Store, utcnow
from sandhaven.store.models import App, Grain, Package


@dataclass(frozen=True)
class InstallResult:
    """What ``POST /api/v1/packages`` answers; ``created`` is False for a no-op."""

    app_id: str
    package_id: str
    version: int
    title: str
    created: bool

    def as_json(self) -> dict[str, object]:
        return {"app_id": self.app_id, "package_id": self.package_id,
                "version": self.version, "title": self.title}


def packages_dir_of(data_dir: Path) -> Path:
    """Where installed package trees live: ``DATA_DIR/packages``."""
    return Path(data_dir) / "packages"


@contextmanager
def _install_lock(packages_dir: Path) -> Iterator[None]:
    fd = os.open(packages_dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _check_against_installed(session: Session, pkg: spk.VerifiedPackage) -> Package | None:
    """The existing row when this exact package is installed; raises NotNewer or
    Conflict when it cannot be installed beside the app's other versions."""
    # One query, so that a concurrent install committing in between cannot make this
    # package look like an older version of itself.
    rows = session.scalars(
        select(Package).where(Package.app_id == pkg.app_id).order_by(Package.version.desc())
    ).all()
    for row in rows:
        if row.id == pkg.package_id:
            return row
    latest = rows[0] if rows else None
    if latest is None:
        return None
    new = pkg.manifest.app
    if new.version <= latest.version:
        raise NotNewer(f"App {pkg.app_id} already has version {latest.version} installed "
                       f"(package {latest.id}); this package's version {new.version} is "
                       "not newer.")
    problem = check_update_keeps_positions(Manifest.model_validate(latest.manifest),
                                           pkg.manifest)
    if problem:
        raise Conflict(f"Package {pkg.package_id} cannot update app {pkg.app_id}: {problem}.")
    return None


def _result(row: Package, created: bool) -> InstallResult:
    return InstallResult(row.app_id, row.id, row.version, row.title, created)


def install_package(store: Store, packages_dir: Path, source: Path | BinaryIO,
                    limits: Limits | None = None, *,
                    installed_by: str | None = None, sandboxed: bool = True) -> InstallResult:
    """Verify and install the ``.spk`` at ``source`` (a path, or an open binary
    seekable file). Returns what was installed; ``created`` False when the same
    package was already there. See the module docstring for the steps.
    ``sandboxed`` unpacks inside bubblewrap (``unpack_sandbox``); False unpacks
    in this process (the ``packages.unpack_sandbox = none`` setting).

    Raises the errors of ``spk.verify``/``archive.walk`` (BadFormat,
    BadSignature, InvalidManifest, UnsafeEntry, PackageTooLarge), NotNewer or
    Conflict; in every case nothing is left behind.
    """
    limits = limits or Limits()
    packages_dir = Path(packages_dir)
    packages_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(source, str | os.PathLike):
        with spk.open_spk(Path(source)) as f:
            return _install_open(store, packages_dir, f, limits, installed_by, sandboxed)
    return _install_open(store, packages_dir, source, limits, installed_by, sandboxed)


def _install_open(store: Store, packages_dir: Path, f: BinaryIO, limits: Limits,
                  installed_by: str | None, sandboxed: bool) -> InstallResult:
    pkg = spk.verify(f, limits)
    with store.session() as s:
        existing = _check_against_installed(s, pkg)
        if existing is not None and (packages_dir / pkg.package_id).is_dir():
            return _result(existing, False)
    tmp = Path(tempfile.mkdtemp(prefix=".install-", dir=packages_dir))
    try:
        if sandboxed:
            unpack_sandbox.extract_sandboxed(pkg, tmp, limits)
        else:
            writer = TreeWriter(tmp / "tree", read_only=True)
            spk.extract_verified(pkg, writer, limits)
            writer.finish(root=False)
        # Trust the result no more than the archive: check what is actually on disk.
        _, unpacked, files = check_tree(tmp / "tree", limits)
        spk.check_referenced_files(pkg.manifest, files, limits)
        with _install_lock(packages_dir):
            return _publish(store, packages_dir, pkg, tmp / "tree", unpacked, installed_by)
    finally:
        remove_tree(tmp)


def _publish(store: Store, packages_dir: Path, pkg: spk.VerifiedPackage, tree: Path,
             unpacked: int, installed_by: str | None) -> InstallResult:
    final = packages_dir / pkg.package_id
    moved = False
    try:
        with store.session() as s:
            existing = _check_against_installed(s, pkg)
            if existing is not None and final.is_dir():
                return _result(existing, False)
            # A tree without a row is left from an interrupted install: replace it.
            remove_tree(final)
            os.rename(tree, final)
            moved = True
            os.chmod(final, 0o555)
            now = utcnow()
            app = s.get(App, pkg.app_id)
            if app is None:
                s.add(App(id=pkg.app_id, title=pkg.manifest.app.title, created_at=now))
            else:
                app.title = pkg.manifest.app.title
            if existing is None:
                existing = Package(
                    id=pkg.package_id, app_id=pkg.app_id, version=pkg.manifest.app.version,
                    marketing_version=pkg.manifest.app.marketing_version,
                    title=pkg.manifest.app.title, manifest=pkg.manifest.model_dump(mode="json"),
                    size_bytes=unpacked, installed_by=installed_by, installed_at=now,
                )
                s.add(existing)
            s.flush()
            result = _result(existing, True)
    except BaseException:
        if moved:
            remove_tree(final)
        raise
    return result


def uninstall_package(store: Store, packages_dir: Path, package_id: str) -> None:
    """Remove an installed package: its row, its tree, and the app's row when no
    package of the app is left.

    Raises InvalidInput for a malformed ID, NotFound when it is not installed,
    PackageInUse naming grains that still use it.
    """
    if not is_package_id(package_id):
        raise InvalidInput(f"{package_id!r} is not a package ID (32 lowercase hex characters).")
    packages_dir = Path(packages_dir)
    packages_dir.mkdir(parents=True, exist_ok=True)
    with _install_lock(packages_dir):
        final = packages_dir / package_id
        doomed = packages_dir / f".uninstall-{package_id}"
        moved = False
        try:
            with store.session() as s:
                row = s.get(Package, package_id)
                if row is None:
                    raise NotFound(f"Package {package_id} is not installed.")
                grains = s.scalars(select(Grain.id).where(Grain.package_id == package_id)
                                   .order_by(Grain.id).limit(6)).all()
                if grains:
                    shown = ", ".join(grains[:5]) + (" and more" if len(grains) > 5 else "")
                    raise PackageInUse(f"Package {package_id} is used by grains {shown}; "
                                       "move or delete them first.")
                app_id = row.app_id
                s.delete(row)
                s.flush()
                others = s.scalar(select(func.count()).select_from(Package)
                                  .where(Package.app_id == app_id))
                app_grains = s.scalar(select(func.count()).select_from(Grain)
                                      .where(Grain.app_id == app_id))
                if not others and not app_grains:
                    app = s.get(App, app_id)
                    if app is not None:
                        s.delete(app)
                if os.path.lexists(final):
                    remove_tree(doomed)
                    os.rename(final, doomed)
                    moved = True
        except BaseException:
            if moved:
                os.rename(doomed, final)
            raise
        remove_tree(doomed)


def find_package(store: Store, package_id: str) -> Package | None:
    """The installed package row, or None."""
    with store.session() as s:
        return s.get(Package, package_id)


@dataclass(frozen=True)
class InstalledApp:
    """An app as the Apps page shows it: its newest installed package."""

    app_id: str
    package_id: str
    title: str
    version: int
    marketing_version: str
    manifest: Manifest
    versions: tuple[str, ...]

    @property
    def icon_path(self) -> str | None:
        icons = self.manifest.metadata.icons
        return icons.app_grid or icons.market or icons.grain


def list_installed_apps(store: Store) -> list[InstalledApp]:
    """Installed apps, by title, each with its newest package and all its package IDs."""
    with store.session() as s:
        rows = s.scalars(select(Package).order_by(Package.app_id, Package.version.desc())).all()
    by_app: dict[str, list[Package]] = {}
    for row in rows:
        by_app.setdefault(row.app_id, []).append(row)
    apps = []
    for app_id, pkgs in by_app.items():
        newest = pkgs[0]
        apps.append(InstalledApp(app_id, newest.id, newest.title, newest.version,
                                 newest.marketing_version,
                                 Manifest.model_validate(newest.manifest),
                                 tuple(p.id for p in pkgs)))
    return sorted(apps, key=lambda a: (a.title.lower(), a.app_id))


def package_file(packages_dir: Path, package_id: str, path: str) -> Path | None:
    """The regular file at ``path`` inside an installed package tree (for icons),
    or None when it is missing, not a regular file, or reached through a symlink."""
    if not is_package_id(package_id) or not pathsafety.is_safe_relative(path):
        return None
    root = Path(packages_dir) / package_id
    full = root / path
    try:
        real_root = os.path.realpath(root)
        if os.path.realpath(full) != os.path.join(real_root, path):
            return None
        if not stat.S_ISREG(os.lstat(full).st_mode):
            return None
    except OSError:
        return None
    return full
