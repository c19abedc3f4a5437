"""Outgoing mail."""

from sandhaven.mail.smtp import Mailer, OutgoingMail

__all__ = ["Mailer", "OutgoingMail"]
