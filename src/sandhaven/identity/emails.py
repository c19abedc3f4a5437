"""Email address validation, through the ``email-validator`` library (RFC 5322
syntax plus the practical rules mail servers apply); no DNS lookups."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from sandhaven.errors import InvalidInput


def normalize_email(raw: str) -> str:
    """The canonical form of an address (domain lower-cased, local part as given,
    then lower-cased: Sandhaven treats addresses case-insensitively).

    Raises InvalidInput naming the address and the problem.
    """
    raw = (raw or "").strip()
    if not raw:
        raise InvalidInput("Email address is empty.")
    if len(raw) > 254:
        raise InvalidInput("Email address is longer than 254 characters.")
    try:
        result = validate_email(raw, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidInput(f"'{raw[:80]}' is not a valid email address: {exc}") from None
    return result.normalized.lower()
