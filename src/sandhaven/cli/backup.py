"""Whole-server backup commands: ``backup create -o FILE`` and ``backup restore
FILE`` (docs/administering/backups.md). Both need the server stopped.

Exit codes: 0 success; 4 a server runs on the data directory; 20 a bad backup
file or passphrase; 2 bad arguments or a data directory that is not empty.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from sandhaven.cli.grains import read_passphrase
from sandhaven.cli.main import add_common_options
from sandhaven.errors import InvalidInput


def register(sub: argparse._SubParsersAction) -> None:
    backup = sub.add_parser("backup", help="back up or restore the whole server (stopped)")
    add_common_options(backup)
    backup_sub = backup.add_subparsers(dest="backup_command", metavar="ACTION", required=True)
    create = backup_sub.add_parser("create", help="write an encrypted backup of the server")
    add_common_options(create)
    create.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                        help="where to write it; never overwritten")
    create.add_argument("--passphrase-file", type=Path, metavar="FILE",
                        help="the passphrase on this file's first line (- for standard "
                             "input); asked on the terminal otherwise")
    create.set_defaults(handler=create_cmd)
    restore = backup_sub.add_parser("restore", help="restore a server backup into an empty "
                                                    "data directory")
    add_common_options(restore)
    restore.add_argument("backup", type=Path, metavar="FILE")
    restore.add_argument("--passphrase-file", type=Path, metavar="FILE",
                         help="as for create")
    restore.set_defaults(handler=restore_cmd)


def _passphrase(args: argparse.Namespace, *, confirm: bool) -> str:
    given = read_passphrase(args.passphrase_file)
    if given is not None:
        return given
    if not sys.stdin.isatty():
        raise InvalidInput("Give the passphrase with --passphrase-file (no terminal to ask on).")
    first = getpass.getpass("Backup passphrase: ")
    if confirm and getpass.getpass("Again: ") != first:
        raise InvalidInput("The passphrases differ.")
    return first


def create_cmd(args: argparse.Namespace) -> int:
    from sandhaven.backup import server_backup
    from sandhaven.cli.context import settings_from_args
    from sandhaven.server import data_dir_lock

    data_dir = Path(settings_from_args(args).data_dir)
    passphrase = _passphrase(args, confirm=True)
    with data_dir_lock(data_dir):
        size = server_backup.create(data_dir, args.output, passphrase)
    print(f"{args.output}: {size} bytes", file=sys.stderr)
    return 0


def restore_cmd(args: argparse.Namespace) -> int:
    from sandhaven.backup import server_backup
    from sandhaven.cli.context import settings_from_args

    data_dir = Path(settings_from_args(args).data_dir)
    passphrase = _passphrase(args, confirm=False)
    server_backup.restore(args.backup, data_dir, passphrase)
    print(f"Restored into {data_dir}; start the server with `sandhaven serve`.",
          file=sys.stderr)
    return 0
