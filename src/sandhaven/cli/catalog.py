"""``sandhaven catalog build``: build app recipes into a static catalog.

Without ``-o``, ``--keys`` and ``--build-dir`` everything goes under the data
directory: the catalog to ``DATA_DIR/catalog`` (what ``sandhaven serve`` reads by
default), the apps' signing keys to ``DATA_DIR/app-keys``, build trees to
``DATA_DIR/build/apps``.

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
    build.add_argument("-o", "--output", type=Path, metavar="DIR",
                       help="catalog directory: index.json, packages/, icons/, apps/, "
                            "screenshots/ (default DATA_DIR/catalog, the default catalog "
                            "source of `sandhaven serve`)")
    build.add_argument("--keys", type=Path, metavar="KEYS_DIR",
                       help="signing keys, <recipe>.key; missing ones are created "
                            "(default DATA_DIR/app-keys)")
    build.add_argument("--build-dir", type=Path, metavar="DIR",
                       help="where recipes assemble their trees (default DATA_DIR/build/apps)")
    build.add_argument("--keep-going", action="store_true",
                       help="build and list the other recipes when one fails (exit 19 "
                            "still names it)")
    build.set_defaults(handler=build_cmd)


def build_cmd(args: argparse.Namespace) -> int:
    from sandhaven.catalog.build import build_catalog
    from sandhaven.catalog.signing import catalog_key
    from sandhaven.catalog.sources import default_location
    from sandhaven.cli.context import settings_from_args

    data_dir = Path(settings_from_args(args).data_dir)
    index = build_catalog(args.apps_dir, args.output or default_location(data_dir),
                          args.keys or data_dir / "app-keys",
                          args.build_dir or data_dir / "build" / "apps",
                          keep_going=args.keep_going)
    for app in index["apps"]:
        print(f"{app['package_id']}  {app['title']} {app['marketing_version']}  "
              f"{app['package']}")
    keys = args.keys or data_dir / "app-keys"
    print(f"catalog key (setting catalog.key): {catalog_key(keys).app_id}")
    return 0
