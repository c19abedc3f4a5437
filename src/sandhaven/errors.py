"""Sandhaven's exception tree. Domain errors carry their HTTP status and a
one-line message meant for the person who caused them; one handler in the shell
and one in the API turn them into pages or JSON, and the CLI into an exit code.

    SandhavenError                 (500, exit 1)
    ├── ConfigError                bad setting or config file (exit 2)
    ├── StoreError                 the store cannot be opened or migrated (exit 3)
    ├── AlreadyRunning             another serve holds the data dir (exit 4)
    ├── EncryptionError            encrypted storage cannot be used: no FUSE, no gocryptfs,
    │                              a damaged or missing key file, a wrong passphrase (exit 5)
    ├── MailError                  the SMTP server refused or cannot be reached (502)
    ├── CatalogError               the app catalog cannot be read, is malformed, or serves
    │                              a package that does not match its index (502)
    ├── SandboxError               a grain sandbox cannot be built or started (500)
    │   └── SandboxUnavailable     the host lacks what sandboxes need: bwrap, gcc, cgroups (500)
    ├── GrainError                 a grain cannot be reached (503)
    │   ├── GrainStartFailed       the grain exited or timed out before answering HTTP (503)
    │   └── GrainCrashed           the grain crashed and waits out its restart backoff (503)
    └── RequestError               the caller's fault (400)
        ├── InvalidInput           malformed field or body (400 / 422)
        │   ├── KeyFileError       app signing key file missing, unsafe or unreadable (exit 10)
        │   └── PackageError       a .spk file or package source is rejected (exit 11)
        │       ├── BadFormat      not a .spk, wrong version, truncated, lengths disagree (exit 12)
        │       ├── BadSignature   the Ed25519 signature does not verify (exit 13)
        │       ├── InvalidManifest  missing or invalid manifest / package definition (422, exit 14)
        │       ├── UnsafeEntry    unsafe name, type, mode or link in the archive (exit 15)
        │       ├── PackageTooLarge  past a package limit (413, exit 16)
        │       └── RecipeFailed   an app recipe's build script failed (exit 19)
        │   └── BadBackup          a grain backup file is rejected (exit 20)
        ├── NotAuthenticated       no or bad credentials (401)
        ├── Forbidden              authenticated, not allowed (403)
        ├── NotFound               no such thing, or not visible to the caller (404)
        ├── Conflict               clashes with existing state (409)
        │   ├── NotNewer           the app already has this or a higher version (exit 17)
        │   ├── PackageInUse       grains still use the package (exit 18)
        │   └── AppNeeded          a backup needs an app (version) not installed (exit 22)
        ├── StorageFull            past the owner's quota or the disk's free space (507, exit 21)
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


class EncryptionError(SandhavenError):
    exit_code = 5
    code = "encryption"


class MailError(SandhavenError):
    status = 502
    code = "mail"


class CatalogError(SandhavenError):
    status = 502
    code = "catalog"


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


class KeyFileError(InvalidInput):
    exit_code = 10
    code = "key_file"


class PackageError(InvalidInput):
    exit_code = 11
    code = "invalid_package"


class BadFormat(PackageError):
    exit_code = 12
    code = "package_format"


class BadSignature(PackageError):
    exit_code = 13
    code = "package_signature"


class InvalidManifest(PackageError):
    status = 422
    exit_code = 14
    code = "invalid_manifest"


class UnsafeEntry(PackageError):
    exit_code = 15
    code = "unsafe_entry"


class PackageTooLarge(PackageError):
    status = 413
    exit_code = 16
    code = "package_too_large"


class RecipeFailed(PackageError):
    exit_code = 19
    code = "recipe_failed"


class NotNewer(Conflict):
    exit_code = 17
    code = "not_newer"


class PackageInUse(Conflict):
    exit_code = 18
    code = "package_in_use"


class BadBackup(InvalidInput):
    exit_code = 20
    code = "invalid_backup"


class AppNeeded(Conflict):
    exit_code = 22
    code = "app_needed"


class StorageFull(RequestError):
    status = 507
    exit_code = 21
    code = "storage_full"
