"""``sandhaven config sample`` prints the documented sample config;
``sandhaven config check`` validates the effective settings."""

from __future__ import annotations

import argparse
import json

from sandhaven.cli.context import settings_from_args
from sandhaven.cli.main import add_common_options
from sandhaven.config import sample_config
from sandhaven.config.settings import settings_markdown


def register(sub: argparse._SubParsersAction) -> None:
    cfg = sub.add_parser("config", help="show or check configuration")
    add_common_options(cfg)
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    sample = cfg_sub.add_parser("sample", help="print a sample config file with every setting")
    sample.set_defaults(handler=lambda args: print(sample_config(), end="") or 0)
    docs = cfg_sub.add_parser("docs", help="print the settings reference (Markdown)")
    docs.set_defaults(handler=lambda args: print(settings_markdown(), end="") or 0)
    check = cfg_sub.add_parser("check", help="validate settings and print them (secrets masked)")
    add_common_options(check)
    check.set_defaults(handler=config_check)


def config_check(args: argparse.Namespace) -> int:
    print(json.dumps(settings_from_args(args).redacted(), indent=2, sort_keys=True))
    return 0
