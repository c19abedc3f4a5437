"""Passwordless email login: a link and a short code by mail, valid
:data:`LOGIN_MINUTES` minutes, single use.

Limits: at most :data:`MAX_OUTSTANDING` unused codes per address (asking for
another retires the oldest); per hour at most 5 mails per address from one client
address, 20 per address in all and 30 per client address; at most
:data:`MAX_CODE_ATTEMPTS` code attempts per address per 15 minutes (a code's
whole life), so guessing a 39-bit code is hopeless.

The answer to a request never tells whether the address has an account; the
mail itself does (to its owner only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from sandhaven.config.runtime import RuntimeSettings
from sandhaven.errors import Conflict, Forbidden, Gone, InvalidInput, MailError, NotFound
from sandhaven.identity import ratelimit
from sandhaven.identity.emails import normalize_email
from sandhaven.identity.invites import live_invite
from sandhaven.identity.profiles import clean_name
from sandhaven.identity.secrets import hash_secret, new_code, new_token, normalize_code, same
from sandhaven.identity.users import UserView, add_user
from sandhaven.mail import Mailer, OutgoingMail
from sandhaven.store import Store, utcnow
from sandhaven.store.models import Invite, LoginToken, User

LOGIN_MINUTES = 15
MAX_OUTSTANDING = 3
MAX_CODE_ATTEMPTS = 5
log = structlog.get_logger("sandhaven.login")


@dataclass(frozen=True)
class LoginResult:
    user: UserView
    created: bool


class EmailLogin:
    def __init__(self, store: Store, runtime: RuntimeSettings, mailer: Mailer) -> None:
        self.store = store
        self.runtime = runtime
        self.mailer = mailer

    # -- asking for a link ---------------------------------------------------
    def request(self, email: str, client_ip: str = "", next_path: str = "") -> None:
        """Mail a login link and code to ``email`` (or a signup link when signup is
        open, or a note that no account exists); the link carries ``next_path`` (a
        local path the caller checked) to come back to. Raises InvalidInput,
        RateLimited, MailError; on MailError the code is withdrawn.

        The mail is sent outside any store transaction, so a slow mail server never
        holds up other requests."""
        email = normalize_email(email)
        settings = self.runtime.effective()
        if not self.mailer.configured():
            raise MailError("Login by email is unavailable: outgoing mail is not configured. "
                            "An admin must set the SMTP server first.")
        base = settings.base_url
        token_id: int | None = None
        mail: OutgoingMail | None = None
        with self.store.session() as s:
            # Per address *and* client, so nobody can lock another person out
            # just by asking for their address; plus looser caps per address and
            # per client.
            ratelimit.hit(s, f"login-mail:{email}:{client_ip}", limit=5,
                          window=timedelta(hours=1), what="login requests for this address")
            ratelimit.hit(s, f"login-mail:{email}", limit=20, window=timedelta(hours=1),
                          what="login requests for this address")
            if client_ip:
                ratelimit.hit(s, f"login-ip:{client_ip}", limit=30, window=timedelta(hours=1),
                              what="login requests from your network")
            user = s.scalar(select(User).where(User.email == email))
            if user is not None and user.suspended_at is None:
                token_id, token, code = self._issue(s, email, "login", client_ip)
                mail = _login_mail(email, base, token, code, next_path=next_path)
            elif user is None and settings.signup_policy == "open":
                token_id, token, code = self._issue(s, email, "signup", client_ip)
                mail = _login_mail(email, base, token, code, signup=True,
                                   next_path=next_path)
            elif user is None:
                mail = OutgoingMail(email, "No account on this Sandhaven server",
                                    f"Someone asked to log in to {base} with this address, "
                                    "but it has no account there, and accounts are by "
                                    "invitation only.\n\nIf this was not you, ignore it.\n")
        if mail is not None:
            self._send_or_withdraw(mail, token_id)
        log.info("login_requested")

    def _send_or_withdraw(self, mail: OutgoingMail, token_id: int | None) -> None:
        try:
            self.mailer.send(mail)
        except MailError:
            if token_id is not None:
                with self.store.session() as s:
                    s.execute(delete(LoginToken).where(LoginToken.id == token_id))
            raise

    def _issue(self, s: Session, email: str, purpose: str, client_ip: str, *,
               invite_id: int | None = None, name: str = "") -> tuple[int, str, str]:
        now = utcnow()
        live = s.scalars(select(LoginToken).where(
            LoginToken.email == email, LoginToken.used_at.is_(None),
            LoginToken.expires_at > now).order_by(LoginToken.created_at)).all()
        for old in live[: max(0, len(live) - MAX_OUTSTANDING + 1)]:
            old.used_at = now  # retire the oldest so at most MAX_OUTSTANDING stay usable
        token, code = new_token(), new_code()
        row = LoginToken(email=email, token_hash=hash_secret(token),
                         code_hash=hash_secret(code), purpose=purpose, invite_id=invite_id,
                         name=name, requester_ip=client_ip[:64], created_at=now,
                         expires_at=now + timedelta(minutes=LOGIN_MINUTES))
        s.add(row)
        s.flush()
        return row.id, token, code

    # -- using a link or code ------------------------------------------------
    def verify_link(self, token: str) -> LoginResult:
        """Log in with the token from a mailed link. Raises NotFound (not a link of
        this server), Gone (used or expired), Forbidden (account suspended)."""
        with self.store.session() as s:
            row = s.scalar(select(LoginToken).where(
                LoginToken.token_hash == hash_secret(token or "")))
            if row is None:
                raise NotFound("This login link is not valid on this server.")
            return self._consume(s, row)

    def verify_code(self, email: str, code: str) -> LoginResult:
        """Log in with the mailed code. Raises InvalidInput for a wrong code,
        RateLimited after too many, Gone when no code is outstanding."""
        email = normalize_email(email)
        code = normalize_code(code)
        if not code:
            raise InvalidInput("The code is empty.")
        with self.store.session() as s:
            ratelimit.hit(s, f"login-code:{email}", limit=MAX_CODE_ATTEMPTS,
                          window=timedelta(minutes=LOGIN_MINUTES),
                          what="wrong codes for this address")
            live = s.scalars(select(LoginToken).where(
                LoginToken.email == email, LoginToken.used_at.is_(None),
                LoginToken.expires_at > utcnow())).all()
            for row in live:
                if same(row.code_hash, hash_secret(code)):
                    return self._consume(s, row)
        # Count the failure in its own transaction so it survives the error.
        raise InvalidInput("That code is not right, or it has expired. Check the latest mail.")

    def _consume(self, s: Session, row: LoginToken) -> LoginResult:
        now = utcnow()
        if row.used_at is not None:
            raise Gone("This login link was already used. Ask for a new one.")
        if row.expires_at <= now:
            raise Gone(f"This login link has expired (links last {LOGIN_MINUTES} minutes). "
                       "Ask for a new one.")
        # Single use, even under concurrent clicks: only one UPDATE can match.
        claimed = s.execute(update(LoginToken).where(
            LoginToken.id == row.id, LoginToken.used_at.is_(None)).values(used_at=now))
        if claimed.rowcount != 1:
            raise Gone("This login link was already used. Ask for a new one.")
        user = s.scalar(select(User).where(User.email == row.email))
        created = False
        if user is None:
            if row.purpose != "signup":
                raise NotFound("The account for this link no longer exists.")
            if row.invite_id is not None:
                invite = s.get(Invite, row.invite_id)
                if invite is None or invite.used_at or invite.revoked_at:
                    raise Gone("The invitation behind this link is no longer valid.")
            elif self.runtime.effective().signup_policy != "open":
                raise Forbidden("Signing up is by invitation only on this server.")
            name = row.name or row.email.split("@")[0]
            user = add_user(s, row.email, name)
            created = True
            if row.invite_id is not None:
                invite.used_at, invite.used_by = now, user.id
        elif user.suspended_at is not None:
            raise Forbidden("This account is suspended. Ask an admin.")
        return LoginResult(UserView.of(user), created)

    # -- invitations ---------------------------------------------------------
    def accept_invite(self, token: str, name: str, email: str | None = None,
                      client_ip: str = "") -> LoginResult | None:
        """Accept an invitation. An invitation sent to an address creates the
        account at once (the link proves the address) and returns it; a link
        invitation mails a confirmation link to ``email`` and returns None.
        Raises NotFound, Gone, InvalidInput, Conflict, MailError."""
        name = clean_name(name)
        with self.store.session() as s:
            invite = live_invite(s, token)
            if invite.email:
                user = add_user(s, invite.email, name)
                invite.used_at, invite.used_by = utcnow(), user.id
                return LoginResult(UserView.of(user), True)
            addr = normalize_email(email or "")
            if s.scalar(select(User).where(User.email == addr)):
                raise Conflict(f"A user with the address {addr} already exists; log in instead.")
            ratelimit.hit(s, f"login-mail:{addr}:{client_ip}", limit=5,
                          window=timedelta(hours=1), what="requests for this address")
            token_id, link_token, code = self._issue(s, addr, "signup", client_ip,
                                                     invite_id=invite.id, name=name)
        self._send_or_withdraw(_login_mail(addr, self.runtime.effective().base_url, link_token,
                                           code, signup=True), token_id)
        return None

    def send_invite_mail(self, email: str, token: str, note: str = "") -> None:
        base = self.runtime.effective().base_url
        text = (f"You are invited to a Sandhaven server at {base}.\n\n"
                f"Create your account: {base}/invite/{token}\n\n")
        if note:
            text += f"Message from the admin: {note}\n\n"
        text += "The invitation lasts 7 days and works once.\n"
        self.mailer.send(OutgoingMail(email, "Your invitation to Sandhaven", text))


def _login_mail(email: str, base: str, token: str, code: str, *, signup: bool = False,
                next_path: str = "") -> OutgoingMail:
    link = f"{base}/login/verify?token={quote(token)}"
    if next_path:
        link += f"&next={quote(next_path, safe='/')}"
    what = "finish creating your account" if signup else "log in"
    text = (f"To {what} at {base}, open this link:\n\n{link}\n\n"
            f"or enter this code on the login page: {code[:4]}-{code[4:]}\n\n"
            f"The link and code work once and expire in {LOGIN_MINUTES} minutes.\n"
            "If you did not ask for this, ignore this mail.\n")
    subject = "Your Sandhaven sign-up link" if signup else "Your Sandhaven login link"
    return OutgoingMail(email, subject, text)
