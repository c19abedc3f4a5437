"""Grain commands: ``grain backup GRAIN -o FILE`` and ``grain restore FILE --owner
EMAIL``.

``grain backup`` needs the server stopped (it holds the data directory's lock so
that no grain runs while it copies; a running server backs grains up from the
grain page or ``GET /api/v1/grains/{id}/backup``). ``grain restore`` works either
way: it only adds a new grain.

Exit codes: 0 success; 4 the server is running; 20 a bad backup file; 21 quota or
disk full; 22 the app (version) is not installed; 2 bad arguments
(``sandhaven.errors``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

from sandhaven.cli.main import add_common_options
from sandhaven.errors import InvalidInput, NotFound


def register(sub: argparse._SubParsersAction) -> None:
    grain = sub.add_parser("grain", help="back up and restore grains")
    add_common_options(grain)
    grain_sub = grain.add_subparsers(dest="grain_command", metavar="ACTION", required=True)
    backup = grain_sub.add_parser("backup", help="write a grain's backup zip (server stopped)")
    add_common_options(backup)
    backup.add_argument("grain_id", metavar="GRAIN")
    backup.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.zip",
                        help="where to write the backup; never overwritten")
    backup.add_argument("--passphrase-file", type=Path, metavar="FILE",
                        help="encrypt with the passphrase on this file's first line "
                             "(- for standard input); `gpg --decrypt` opens the result")
    backup.set_defaults(handler=backup_cmd)
    restore = grain_sub.add_parser("restore", help="restore a backup zip as a new grain; "
                                                   "prints its ID")
    add_common_options(restore)
    restore.add_argument("backup", type=Path, metavar="FILE.zip")
    restore.add_argument("--owner", required=True, metavar="EMAIL",
                         help="the user who will own the restored grain")
    restore.add_argument("--passphrase-file", type=Path, metavar="FILE",
                         help="the passphrase of an encrypted backup, on this file's first "
                              "line (- for standard input)")
    restore.set_defaults(handler=restore_cmd)


@contextlib.contextmanager
def _services(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from sandhaven.cli.context import open_storage_and_store, settings_from_args
    from sandhaven.services import Services

    settings = settings_from_args(args)
    with open_storage_and_store(settings) as (storage, store):
        yield settings, Services.build(settings, store, storage=storage)


def read_passphrase(path: Path | None) -> str | None:
    """The first line of ``path`` (``-``: standard input), or None without a path.
    Raises InvalidInput when it cannot be read."""
    if path is None:
        return None
    try:
        text = sys.stdin.readline() if str(path) == "-" else path.read_text().split("\n")[0]
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"Cannot read the passphrase from {path}: "
                           f"{getattr(exc, 'strerror', None) or exc}.") from None
    return text.rstrip("\r\n")


def backup_cmd(args: argparse.Namespace) -> int:
    passphrase = read_passphrase(args.passphrase_file)
    with _services(args) as (settings, services):
        return _backup(args, passphrase, settings, services)


def _backup(args: argparse.Namespace, passphrase: str | None, settings, services) -> int:  # type: ignore[no-untyped-def]
    from sandhaven.backup.writer import open_new
    from sandhaven.server import data_dir_lock

    out: Path = args.output
    try:
        with data_dir_lock(Path(settings.data_dir)):
            grain = services.grains.view(args.grain_id)
            f = open_new(out)
            try:
                with f:
                    meta = asyncio.run(services.backups.backup(grain.owner_id, grain.id, f,
                                                               passphrase))
            except BaseException:
                out.unlink(missing_ok=True)
                raise
    finally:
        services.store.close()
    print(f"{out}: {len(meta.files)} entries, {meta.data_bytes} bytes of data", file=sys.stderr)
    return 0


def restore_cmd(args: argparse.Namespace) -> int:
    passphrase = read_passphrase(args.passphrase_file)
    with _services(args) as (_, services):
        return _restore(args, passphrase, services)


def _restore(args: argparse.Namespace, passphrase: str | None, services) -> int:  # type: ignore[no-untyped-def]
    try:
        owner = services.identity.users.find_by_email(args.owner)
        if owner is None:
            raise NotFound(f"No user with the email address {args.owner[:100]!r}.")
        try:
            f = open(args.backup, "rb")  # noqa: SIM115 - closed below, after the restore
        except OSError as exc:
            raise InvalidInput(f"Cannot read {args.backup}: {exc.strerror}.") from None
        with f:
            grain = asyncio.run(services.backups.restore(owner.id, f, passphrase))
    finally:
        services.store.close()
    print(grain.id)
    return 0
