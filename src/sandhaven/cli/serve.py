"""``sandhaven serve``: the main job. Every setting of the table is a flag here."""

from __future__ import annotations

import argparse

from sandhaven.cli.context import settings_from_args
from sandhaven.cli.main import add_common_options
from sandhaven.config.settings import SETTINGS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the server (shell, API, gateway, grains)",
                       description="Run Sandhaven until SIGINT or SIGTERM. Every setting can "
                                   "also come from the config file or SANDHAVEN_* variables.")
    add_common_options(p)
    for s in SETTINGS:
        if s.name == "data_dir":
            continue
        if s.kind == "boolean":
            p.add_argument(s.flag, dest=s.attr, action="store_const", const="true",
                           default=argparse.SUPPRESS, help=s.help)
        else:
            p.add_argument(s.flag, dest=s.attr, default=argparse.SUPPRESS,
                           metavar=s.kind.upper(), help=s.help)
    p.add_argument("--check-listen", action="store_true",
                   help="only check that the address can be listened on, then exit "
                        "(0, or 2 with the reason); creates nothing")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sandhaven.server import listen, serve

    overrides = {s.name: getattr(args, s.attr, None) for s in SETTINGS if s.name != "data_dir"}
    settings = settings_from_args(args, **overrides)
    if args.check_listen:
        listen(settings.listen_host, settings.port).close()
        return 0
    return serve(settings)
