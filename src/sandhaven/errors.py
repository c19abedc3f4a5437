"""Sandhaven's exception tree. Domain errors carry their HTTP status and a
one-line message meant for the person who caused them; one handler in the shell
and one in the API turn them into pages or JSON, and the CLI into an exit code.

    SandhavenError                 (500, exit 1)
    ├── ConfigError                bad setting or config file (exit 2)
    ├── StoreError                 the store cannot be opened or migrated (exit 3)
    ├── AlreadyRunning             another serve holds the data dir (exit 4)
    ├── MailError                  the SMTP server refused or cannot be reached (502)
    ├── SandboxError               a grain sandbox cannot be built or started (500)
    │   └── SandboxUnavailable     the host lacks what sandboxes need: bwrap, gcc, cgroups (500)
    ├── GrainError                 a grain cannot be reached (503)
    │   ├── GrainStartFailed       the grain exited or timed out before answering HTTP (503)
    │   └── GrainCrashed           the grain crashed and waits out its restart backoff (503)
    └── RequestError               the caller's fault (400)
        ├── InvalidInput           malformed field or body (400 / 422)
        ├── NotAuthenticated       no or bad credentials (401)
        ├── Forbidden              authenticated, not allowed (403)
        ├── NotFound               no such thing, or not visible to the caller (404)
        ├── Conflict               clashes with existing state (409)
        ├── Gone                   existed once, used or expired (410)
        ├── PayloadTooLarge        body past the limit (413)
        └── RateLimited            too many attempts (429)
"""

from __future__ import annotations


class SandhavenError(Exception):
    """Base of every error Sandhaven raises on purpose. ``str(exc)`` is one line."""

    status: int = 500
    exit_code: int = 1
    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message.replace("\n", " "))

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(SandhavenError):
    exit_code = 2
    code = "config"


class StoreError(SandhavenError):
    exit_code = 3
    code = "store"


class AlreadyRunning(SandhavenError):
    exit_code = 4
    code = "already_running"


class MailError(SandhavenError):
    status = 502
    code = "mail"


class SandboxError(SandhavenError):
    code = "sandbox"


class SandboxUnavailable(SandboxError):
    code = "sandbox_unavailable"


class GrainError(SandhavenError):
    status = 503
    code = "grain"


class GrainStartFailed(GrainError):
    code = "grain_start_failed"


class GrainCrashed(GrainError):
    """Raised while a crashed grain waits out its backoff; ``retry_after`` is in seconds."""

    code = "grain_crashed"

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RequestError(SandhavenError):
    status = 400
    code = "bad_request"
    exit_code = 2


class InvalidInput(RequestError):
    status = 400
    code = "invalid_input"


class NotAuthenticated(RequestError):
    status = 401
    code = "not_authenticated"


class Forbidden(RequestError):
    status = 403
    code = "forbidden"


class NotFound(RequestError):
    status = 404
    code = "not_found"


class Conflict(RequestError):
    status = 409
    code = "conflict"


class Gone(RequestError):
    status = 410
    code = "gone"


class PayloadTooLarge(RequestError):
    status = 413
    code = "payload_too_large"


class RateLimited(RequestError):
    status = 429
    code = "rate_limited"
