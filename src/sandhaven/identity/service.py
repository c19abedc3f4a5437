"""The identity service: one object the shell, the API and the CLI share."""

from __future__ import annotations

from datetime import timedelta

from sandhaven.config.runtime import RuntimeSettings
from sandhaven.errors import Forbidden, MailError
from sandhaven.identity.api_tokens import ApiTokens
from sandhaven.identity.email_login import EmailLogin
from sandhaven.identity.invites import Invites, InviteView
from sandhaven.identity.sessions import LoginSessions
from sandhaven.identity.setup import Setup
from sandhaven.identity.users import Users, UserView
from sandhaven.mail import Mailer
from sandhaven.store import Store

# Named test users offered by `serve --dev`.
DEV_USERS = ("Alice Dev", "Bob Dev", "Carol Dev")


class Identity:
    """Users, logins, sessions, tokens, setup and invites over one store."""

    def __init__(self, store: Store, runtime: RuntimeSettings, mailer: Mailer) -> None:
        self.store = store
        self.runtime = runtime
        self.mailer = mailer
        self.users = Users(store)
        self.sessions = LoginSessions(store, timedelta(days=runtime.base.session_days))
        self.tokens = ApiTokens(store)
        self.setup = Setup(store)
        self.invites = Invites(store)
        self.email_login = EmailLogin(store, runtime, mailer)

    def invite(self, actor_id: str, email: str | None, note: str = "") -> tuple[InviteView, str]:
        """Invite an address (a mail with the link is sent) or, without one, make a
        single-use link; returns the invitation and its token. A mail that cannot
        be sent leaves no invitation behind. Raises Forbidden, InvalidInput,
        Conflict, MailError."""
        if email and not self.mailer.configured():
            raise MailError("Outgoing mail is not configured; make a link invitation instead, "
                            "or set up SMTP under Admin → Settings.")
        view, token = self.invites.create(actor_id, email or None, note)
        if view.email:
            try:
                self.email_login.send_invite_mail(view.email, token, view.note)
            except MailError:
                self.invites.delete(view.id)
                raise
        return view, token

    @property
    def dev_mode(self) -> bool:
        return bool(self.runtime.base.dev)

    def dev_login(self, name: str) -> UserView:
        """The dev account called ``name`` (made on first use). Raises Forbidden
        unless the server runs with ``--dev``."""
        if not self.dev_mode:
            raise Forbidden("Dev accounts exist only when the server runs with --dev.")
        if name not in DEV_USERS:
            raise Forbidden(f"There is no dev account called {name[:40]!r}.")
        # example.org is reserved for documentation (RFC 2606): never a real mailbox.
        email = name.split()[0].lower() + "@dev.example.org"
        found = self.users.find_by_email(email)
        if found is not None:
            return found
        # The first dev account on an empty server is admin, so dev mode can test admin pages.
        return self.users.create(email, name, is_dev=True, is_admin=self.users.count() == 0)
