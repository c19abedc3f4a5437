"""Identity: users, login (email links and codes, dev accounts), login sessions,
personal API tokens, first-admin setup and invitations."""

from sandhaven.identity.service import Identity

__all__ = ["Identity"]
