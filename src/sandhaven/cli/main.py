"""Entry point of the ``sandhaven`` command.

Each command group lives in its own module with ``register(subparsers)``;
a command's handler takes the parsed ``argparse.Namespace`` and returns an exit
code. Errors derived from :class:`~sandhaven.errors.SandhavenError` become one
line on standard error and their ``exit_code``; nothing else is caught, so a bug
still shows its traceback to the developer running the command.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from sandhaven import __version__
from sandhaven.errors import SandhavenError

# Modules that add subcommands, in help order. Each has ``register(subparsers)``.
COMMAND_MODULES = (
    "sandhaven.cli.serve",
    "sandhaven.cli.users",
    "sandhaven.cli.config_cmd",
    "sandhaven.cli.packages",
    "sandhaven.cli.catalog",
    "sandhaven.cli.keys",
    "sandhaven.cli.grains",
    "sandhaven.cli.backup",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sandhaven",
        description="Sandhaven: a personal server platform where every document is a sandbox.",
    )
    parser.add_argument("--version", action="version", version=f"sandhaven {__version__}")
    add_common_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def add_common_options(parser: argparse.ArgumentParser, *, suppress: bool = True) -> None:
    """``--data-dir`` and ``--config``, accepted before or after the subcommand."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--data-dir", type=str, default=default, metavar="DIR",
                        help="data directory (default ~/.local/share/sandhaven)")
    parser.add_argument("--config", type=Path, default=default, metavar="FILE",
                        help="TOML config file (see `sandhaven config sample`)")



def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except SandhavenError as exc:
        print(f"sandhaven: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`: not an error worth a traceback.
        sys.stderr.close()
        return 0
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"sandhaven: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
