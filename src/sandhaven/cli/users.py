"""Admin commands that work whether or not the server runs: ``user add``,
``token create``, ``admin-token``."""

from __future__ import annotations

import argparse

from sandhaven.cli.context import open_store, settings_from_args
from sandhaven.cli.main import add_common_options
from sandhaven.identity.setup import SETUP_MINUTES, Setup


def register(sub: argparse._SubParsersAction) -> None:
    user = sub.add_parser("user", help="manage users")
    add_common_options(user)
    user_sub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = user_sub.add_parser("add", help="create a user")
    add_common_options(add)
    add.add_argument("email")
    add.add_argument("--name", required=True)
    add.add_argument("--admin", action="store_true", help="make the user an admin")
    add.set_defaults(handler=user_add)

    token = sub.add_parser("token", help="manage personal API tokens")
    add_common_options(token)
    token_sub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = token_sub.add_parser("create", help="print a new personal API token for a user")
    add_common_options(create)
    create.add_argument("email")
    create.add_argument("--label", default="command line")
    create.set_defaults(handler=token_create)

    admin = sub.add_parser("admin-token",
                           help=f"print a fresh first-admin setup URL (valid {SETUP_MINUTES} "
                                "minutes)")
    add_common_options(admin)
    admin.set_defaults(handler=admin_token)


def user_add(args: argparse.Namespace) -> int:
    from sandhaven.identity.users import Users

    with open_store(settings_from_args(args)) as store:
        user = Users(store).create(args.email, args.name, is_admin=args.admin)
    print(user.id)
    return 0


def token_create(args: argparse.Namespace) -> int:
    from sandhaven.identity.api_tokens import ApiTokens
    from sandhaven.identity.users import Users

    with open_store(settings_from_args(args)) as store:
        user = Users(store).get_by_email(args.email)
        _, token = ApiTokens(store).create(user.id, args.label)
    print(token)
    return 0


def admin_token(args: argparse.Namespace) -> int:
    from sandhaven.config.runtime import RuntimeSettings

    settings = settings_from_args(args)
    with open_store(settings) as store:
        token = Setup(store).new_token()
        base = settings.base_url
        if not settings.is_set("base_url") and not settings.is_set("port"):
            # Use the URL the server was last started with, e.g. `serve --port 7000`.
            base = RuntimeSettings(store, settings).recorded_state("base_url") or base
    print(f"Create the first admin account within {SETUP_MINUTES} minutes at:\n"
          f"  {base}/setup/{token}")
    return 0
