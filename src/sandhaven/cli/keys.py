"""Key commands: ``keys init``, ``keys rotate`` and ``unseal``
(docs/administering/encryption.md)."""

from __future__ import annotations

import argparse
import getpass
import sys

from sandhaven.cli.context import settings_from_args
from sandhaven.cli.main import add_common_options
from sandhaven.errors import ConfigError, EncryptionError


def register(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="manage the key-encryption key (encryption at rest)")
    add_common_options(keys)
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    init = keys_sub.add_parser("init", help="create the key file before the first start")
    add_common_options(init)
    init.add_argument("--passphrase", action="store_true",
                      help="seal the key by a passphrase (read from the terminal, or the "
                           "first line of standard input); the server then starts sealed")
    init.set_defaults(handler=keys_init)
    rotate = keys_sub.add_parser(
        "rotate", help="re-wrap every volume key under a new KEK (server stopped)")
    add_common_options(rotate)
    # Test-only: stop after step N of the rotation and wait, so a test can kill -9
    # the command at that point (docs/administering/encryption.md).
    rotate.add_argument("--pause-after", type=int, default=None, help=argparse.SUPPRESS)
    rotate.set_defaults(handler=keys_rotate)

    unseal = sub.add_parser("unseal", help="enter the passphrase of a sealed server")
    add_common_options(unseal)
    unseal.add_argument("--url", default=None,
                        help="the server's URL (default: the base_url setting)")
    unseal.set_defaults(handler=unseal_cmd)


MIN_PASSPHRASE = 8


def read_passphrase(confirm: bool = False) -> str:
    """From the terminal (asked twice when ``confirm``), else the first line of stdin.
    Raises ConfigError when it is empty or the two entries differ, or when a new one
    (``confirm``) is shorter than 8 characters."""
    if sys.stdin.isatty():
        value = getpass.getpass("Passphrase: ")
        if confirm and getpass.getpass("Passphrase again: ") != value:
            raise ConfigError("The two passphrases differ.")
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise ConfigError("The passphrase is empty.")
    if confirm and len(value) < MIN_PASSPHRASE:
        raise ConfigError(f"The passphrase must have at least {MIN_PASSPHRASE} characters: "
                          "it guards every key of the server.")
    return value


def keys_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sandhaven.encryption.kek import Kek, write_key_file
    from sandhaven.encryption.private import has_encrypted_data, kek_path

    settings = settings_from_args(args)
    path = kek_path(Path(settings.data_dir))
    if path.exists() or has_encrypted_data(Path(settings.data_dir)):
        raise EncryptionError(f"{path.parent} already holds keys; `sandhaven keys rotate` "
                              "makes a new KEK.")
    passphrase = read_passphrase(confirm=True) if args.passphrase else None
    write_key_file(path, Kek.generate(), passphrase)
    print(f"Key file written: {path}. Back up the keys directory somewhere else"
          + (" and remember the passphrase" if passphrase else "") + ".")
    return 0


def keys_rotate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sandhaven.encryption.kek import needs_passphrase
    from sandhaven.encryption.private import kek_path
    from sandhaven.encryption.rotate import keyless_volumes, rotate
    from sandhaven.server import data_dir_lock

    settings = settings_from_args(args)
    data = Path(settings.data_dir)
    if not kek_path(data).exists():
        raise EncryptionError(f"No key file in {data / 'keys'}: nothing to rotate.")
    passphrase = read_passphrase() if needs_passphrase(kek_path(data)) else None

    def after_step(n: int) -> None:
        if args.pause_after == n:
            print(f"rotate: paused after step {n}", flush=True)
            sys.stdin.read()  # until killed (or stdin closes)

    with data_dir_lock(data):
        old, new, count = rotate(data, passphrase, after_step)
        keyless = keyless_volumes(data)
    print(f"KEK {old} replaced by {new}; {count} volume keys re-wrapped. Back up the keys "
          "directory again.")
    for grain_id in keyless:
        print(f"warning: grain {grain_id} has an encrypted volume but no key record "
              f"({data / 'grains' / grain_id / 'key'}): no key opens it. Restore that file "
              "from a backup of the data directory, or purge the grain.", file=sys.stderr)
    return 0


def unseal_cmd(args: argparse.Namespace) -> int:
    import httpx

    settings = settings_from_args(args)
    url = (args.url or settings.base_url).rstrip("/") + "/unseal"
    passphrase = read_passphrase()
    try:
        reply = httpx.post(url, json={"passphrase": passphrase}, timeout=120)
    except httpx.HTTPError as exc:
        raise EncryptionError(f"Cannot reach the server at {url}: "
                              f"{str(exc).rstrip('.')}.") from None
    if reply.status_code == 404 or "json" not in reply.headers.get("content-type", ""):
        # A sealed server answers /unseal in JSON; an unsealed one has no such
        # route (its shell refuses the post as a page).
        raise EncryptionError(f"The server at {url} is not sealed (it answered "
                              f"{reply.status_code}).")
    try:
        message = str(reply.json().get("message", ""))
    except (ValueError, AttributeError):
        message = ""
    if reply.status_code != 200:
        raise EncryptionError(message or f"The server answered {reply.status_code}.")
    print(message or "Unsealed.")
    return 0
