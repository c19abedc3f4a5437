"""Sending mail through the configured SMTP server (standard library ``smtplib``).

The SMTP settings are read at each send, so a change in the admin pages takes
effect at once. Sending blocks; async callers run it in a thread.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import structlog

from sandhaven.config import Settings
from sandhaven.errors import MailError

log = structlog.get_logger("sandhaven.mail")


@dataclass(frozen=True)
class OutgoingMail:
    to: str
    subject: str
    text: str


class Mailer:
    """Sends :class:`OutgoingMail` through SMTP. ``settings`` returns the effective
    settings (``smtp.*``). Raises MailError with a one-line reason on failure."""

    def __init__(self, settings: Callable[[], Settings], timeout: float = 20.0) -> None:
        self._settings = settings
        self.timeout = timeout

    def configured(self) -> bool:
        return bool(self._settings().get("smtp.host"))

    def send(self, mail: OutgoingMail) -> None:
        cfg = self._settings()
        host = cfg.get("smtp.host")
        if not host:
            raise MailError("Outgoing mail is not configured: an admin must set the SMTP "
                            "server (setting smtp.host) first.")
        msg = EmailMessage()
        msg["From"] = cfg.get("smtp.from_address") or "sandhaven@localhost"
        msg["To"] = mail.to
        msg["Subject"] = mail.subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="sandhaven")
        msg.set_content(mail.text)
        port, security = cfg.get("smtp.port"), cfg.get("smtp.security")
        try:
            context = ssl.create_default_context()
            if security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=self.timeout,
                                                        context=context)
            else:
                client = smtplib.SMTP(host, port, timeout=self.timeout)
            with client:
                if security == "starttls":
                    client.starttls(context=context)
                if cfg.get("smtp.user"):
                    client.login(cfg.get("smtp.user"), str(cfg.get("smtp.password")))
                client.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            log.warning("mail_failed", smtp_host=host, smtp_port=port, reason=reason)
            raise MailError(f"Could not send mail through {host}:{port}: {reason}") from None
        log.info("mail_sent", subject=mail.subject)
