"""``sandhaven catalog build``: build app recipes into a static catalog.

Exit codes: 0 success; 19 a recipe's build script failed; the package errors'
codes when a built package does not verify (``sandhaven.errors``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sandhaven.cli.main import add_common_options


def register(sub: argparse._SubParsersAction) -> None:
    catalog = sub.add_parser("catalog", help="app catalogs")
    catalog_sub = catalog.add_subparsers(dest="catalog_command", metavar="COMMAND",
                                         required=True)
    build = catalog_sub.add_parser(
        "build", help="build every app recipe of APPS_DIR into a static catalog in DIR")
    add_common_options(build)
    build.add_argument("apps_dir", type=Path, metavar="APPS_DIR",
                       help="directory of recipes (each with build.sh and sandhaven-pkgdef.toml)")
    build.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                       help="catalog directory: index.json and packages/")
    build.add_argument("--keys", type=Path, default=Path("keys"), metavar="KEYS_DIR",
                       help="signing keys, <recipe>.key; missing ones are created "
                            "(default ./keys)")
    build.add_argument("--build-dir", type=Path, default=Path("build/apps"), metavar="DIR",
                       help="where recipes assemble their trees (default ./build/apps)")
    build.set_defaults(handler=build_cmd)


def build_cmd(args: argparse.Namespace) -> int:
    from sandhaven.catalog.build import build_catalog

    index = build_catalog(args.apps_dir, args.output, args.keys, args.build_dir)
    for app in index["apps"]:
        print(f"{app['package_id']}  {app['title']} {app['marketing_version']}  "
              f"{app['package']}")
    return 0
