"""Packaging and install commands: ``keygen``, ``pack``, ``verify``, ``unpack``,
``install``, ``uninstall``.

Exit codes: 0 success; the ``exit_code`` of the error otherwise — 10 key file,
12 format, 13 signature, 14 manifest, 15 unsafe entry, 16 limit, 17 not newer,
18 package in use (``sandhaven.errors``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sandhaven.cli.main import add_common_options
from sandhaven.errors import InvalidInput


def register(sub: argparse._SubParsersAction) -> None:
    keygen = sub.add_parser("keygen", help="create an app signing key; prints the app ID")
    add_common_options(keygen)
    keygen.add_argument("-o", "--output", type=Path, metavar="KEYFILE",
                        help="where to write the key (default ./<app ID>.key); never overwritten")
    keygen.set_defaults(handler=keygen_cmd)

    pack = sub.add_parser("pack", help="pack an app source directory into a signed .spk; "
                                       "prints the package ID")
    add_common_options(pack)
    pack.add_argument("source", type=Path, metavar="SRC",
                      help="directory holding sandhaven-pkgdef.toml")
    pack.add_argument("-k", "--key", type=Path, required=True, metavar="KEYFILE")
    pack.add_argument("-o", "--output", type=Path, required=True, metavar="APP.spk")
    pack.set_defaults(handler=pack_cmd)

    verify = sub.add_parser("verify", help="check a .spk completely without installing it")
    add_common_options(verify)
    verify.add_argument("spk", type=Path, metavar="APP.spk")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.set_defaults(handler=verify_cmd)

    unpack = sub.add_parser("unpack", help="verify a .spk and unpack its tree into DIR")
    add_common_options(unpack)
    unpack.add_argument("spk", type=Path, metavar="APP.spk")
    unpack.add_argument("directory", type=Path, metavar="DIR",
                        help="must not exist (or be an empty directory)")
    unpack.set_defaults(handler=unpack_cmd)

    install = sub.add_parser("install", help="verify and install a .spk into the data dir")
    add_common_options(install)
    install.add_argument("spk", type=Path, metavar="APP.spk")
    install.set_defaults(handler=install_cmd)

    uninstall = sub.add_parser("uninstall", help="remove an installed package no grain uses")
    add_common_options(uninstall)
    uninstall.add_argument("package_id", metavar="PACKAGE_ID")
    uninstall.set_defaults(handler=uninstall_cmd)


def _limits(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from sandhaven.cli.context import settings_from_args
    from sandhaven.packages.limits import Limits

    return Limits.from_settings(settings_from_args(args))


def keygen_cmd(args: argparse.Namespace) -> int:
    from sandhaven.packages.keys import SigningKey, write_key_file

    key = SigningKey.generate()
    path = args.output or Path(f"{key.app_id}.key")
    write_key_file(key, path)
    print(key.app_id)
    return 0


def pack_cmd(args: argparse.Namespace) -> int:
    from sandhaven.packages.keys import read_key_file
    from sandhaven.packages.pack import pack

    if not args.source.is_dir():
        raise InvalidInput(f"{args.source} is not a directory.")
    key = read_key_file(args.key)
    result = pack(args.source, key, args.output, _limits(args))
    print(result.package_id)
    return 0


def verify_cmd(args: argparse.Namespace) -> int:
    from sandhaven.packages.spk import verify_file

    summary = verify_file(args.spk, _limits(args))
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        for key in ("app_id", "package_id", "title", "version", "marketing_version"):
            print(f"{key}: {summary[key]}")
    return 0


def unpack_cmd(args: argparse.Namespace) -> int:
    from sandhaven.packages import spk
    from sandhaven.packages.tree import TreeWriter, remove_tree

    target: Path = args.directory
    if target.exists():
        if not target.is_dir() or any(target.iterdir()):
            raise InvalidInput(f"{target} exists and is not an empty directory.")
        target.rmdir()
    limits = _limits(args)
    with spk.open_spk(args.spk) as f:
        pkg = spk.verify(f, limits)
        try:
            writer = TreeWriter(target, read_only=False)
        except OSError as exc:
            raise InvalidInput(f"{target} cannot be created: {exc.strerror}.") from None
        try:
            spk.extract_verified(pkg, writer, limits)
            writer.finish()
        except BaseException:
            remove_tree(target)
            raise
    print(pkg.package_id)
    return 0


def install_cmd(args: argparse.Namespace) -> int:
    from sandhaven.cli.context import open_store, settings_from_args
    from sandhaven.packages.install import install_package, packages_dir_of
    from sandhaven.packages.limits import Limits

    settings = settings_from_args(args)
    with open_store(settings) as store:
        result = install_package(
            store, packages_dir_of(settings.data_dir), args.spk, Limits.from_settings(settings),
            sandboxed=settings.get("packages.unpack_sandbox") == "bubblewrap")
    state = "installed" if result.created else "already installed"
    print(f"{result.package_id} {state}: {result.title} version {result.version} "
          f"(app {result.app_id})")
    return 0


def uninstall_cmd(args: argparse.Namespace) -> int:
    from sandhaven.cli.context import open_store, settings_from_args
    from sandhaven.packages.install import packages_dir_of, uninstall_package

    settings = settings_from_args(args)
    with open_store(settings) as store:
        uninstall_package(store, packages_dir_of(settings.data_dir), args.package_id)
    print(f"{args.package_id} uninstalled")
    return 0

