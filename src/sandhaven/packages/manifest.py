"""The manifest: what an app declares about itself, and its package definition.

An app's source directory holds ``sandhaven-pkgdef.toml``, the *package
definition*: the manifest tables plus ``[files]``, which says which source paths
go into the package. ``pack`` validates it and embeds the manifest (without
``[files]``) in the ``.spk`` as canonical JSON; ``verify`` and ``install``
validate that JSON again with the same schema, since a package is untrusted.

Fields follow Sandstorm's ``sandstorm-pkgdef.capnp`` (``reference/compat.md``),
written in snake_case; ``docs/developing/manifest.md`` documents each one.
Permissions and roles are identified by position: an update may add to the end
or mark one ``obsolete``, never remove or reorder
(:func:`check_update_keeps_positions`).

Errors: :class:`~sandhaven.errors.InvalidManifest`, one line naming the field
and what is wrong ("Manifest field 'app.version': Input should be a valid
integer.").
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from sandhaven import pathsafety
from sandhaven.errors import InvalidManifest
from sandhaven.sandbox.spec import PLATFORM_ENV
from sandhaven.sandbox.spec import PROXY_PORT as BRIDGE_PROXY_PORT

PKGDEF_NAME = "sandhaven-pkgdef.toml"

CATEGORIES = (
    "productivity", "communications", "social", "webPublishing", "office",
    "developerTools", "science", "graphics", "media", "games", "other",
)


def _one_line(value: str) -> str:
    if pathsafety.bad_char(value) is not None:
        raise ValueError("must be one line without control characters")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL")
    return value


def _package_path(value: str) -> str:
    if not pathsafety.is_safe_relative(value):
        raise ValueError("must be a relative path inside the package, without '..'")
    return value


def _http_url(value: str) -> str:
    if value and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise ValueError("must be an http:// or https:// URL")
    return value


Line = Annotated[str, StringConstraints(max_length=200), AfterValidator(_one_line)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=100),
                  AfterValidator(_one_line)]
Text = Annotated[str, StringConstraints(max_length=64 * 1024), AfterValidator(_no_nul)]
PackagePath = Annotated[str, StringConstraints(max_length=1024), AfterValidator(_package_path)]
Url = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_http_url)]
Uint32 = Annotated[int, Field(ge=0, le=0xFFFFFFFF)]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
PermissionName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class _Strict(BaseModel):
    # Unknown fields are errors (a typo must not silently drop a setting), and no
    # type coercion: "1" is not an integer.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Command(_Strict):
    """A process to start in the grain: ``argv`` (absolute program path first) and
    extra environment variables."""

    argv: Annotated[list[Annotated[str, StringConstraints(max_length=4096),
                                   AfterValidator(_no_nul)]],
                    Field(min_length=1, max_length=256)]
    env: dict[EnvName, Annotated[str, StringConstraints(max_length=4096),
                                 AfterValidator(_no_nul)]] = {}

    @model_validator(mode="after")
    def _absolute_program(self) -> Command:
        if not self.argv[0].startswith("/"):
            raise ValueError("argv[0] must be an absolute path (the app is at /opt/app)")
        taken = sorted(set(self.env) & PLATFORM_ENV)
        if taken:
            raise ValueError(f"env: {', '.join(taken)} is set by the platform")
        return self


class AppInfo(_Strict):
    title: Title
    version: Uint32
    marketing_version: Line = ""
    min_upgradable_version: Uint32 = 0
    port: Annotated[int, Field(ge=1, le=65535)]
    api_path: Annotated[str, StringConstraints(max_length=200), AfterValidator(_one_line)] = ""

    @model_validator(mode="after")
    def _check(self) -> AppInfo:
        if self.min_upgradable_version > self.version:
            raise ValueError("min_upgradable_version must not exceed version")
        if self.port == BRIDGE_PROXY_PORT:
            raise ValueError(f"port {BRIDGE_PROXY_PORT} is the platform's proxy port")
        if self.api_path and not (self.api_path.startswith("/") and self.api_path.endswith("/")):
            raise ValueError("api_path must start and end with '/'")
        return self


class Action(_Strict):
    """A way to create a grain, e.g. noun phrase "note" → "New note"."""

    noun_phrase: Title
    description: Line = ""
    command: Command


class Permission(_Strict):
    name: PermissionName
    title: Line = ""
    description: Line = ""
    obsolete: bool = False


class Role(_Strict):
    """A bundle of permissions offered when sharing, e.g. "editor" ("can edit")."""

    title: Title
    verb_phrase: Line = ""
    description: Line = ""
    permissions: list[PermissionName] = []
    obsolete: bool = False
    default: bool = False


class Icons(_Strict):
    """Paths inside the package of the icons: app grid (128 px), grain (24 px),
    market (150 px). SVG or PNG."""

    app_grid: PackagePath | None = None
    grain: PackagePath | None = None
    market: PackagePath | None = None

    def paths(self) -> list[str]:
        return [p for p in (self.app_grid, self.grain, self.market) if p]


class License(_Strict):
    """Exactly one of: an OSI/SPDX identifier, proprietary terms, public domain notice."""

    spdx: Line | None = None
    proprietary: Text | None = None
    public_domain: Text | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> License:
        if sum(v is not None for v in (self.spdx, self.proprietary, self.public_domain)) != 1:
            raise ValueError("give exactly one of spdx, proprietary, public_domain")
        return self


class Author(_Strict):
    upstream_author: Line = ""
    contact_email: Annotated[str, StringConstraints(max_length=320,
                                                    pattern=r"^$|^[^@\s]+@[^@\s]+$")] = ""


class Metadata(_Strict):
    icons: Icons = Icons()
    website: Url = ""
    code_url: Url = ""
    license: License | None = None
    categories: list[Literal[CATEGORIES]] = []  # type: ignore[valid-type]
    author: Author = Author()
    description: Text = ""
    short_description: Annotated[str, StringConstraints(max_length=40),
                                 AfterValidator(_one_line)] = ""
    screenshots: Annotated[list[PackagePath], Field(max_length=20)] = []
    change_log: Text = ""

    @model_validator(mode="after")
    def _short(self) -> Metadata:
        if len(self.short_description.split()) > 3:
            raise ValueError("short_description must be 1 to 3 words")
        return self


class Manifest(_Strict):
    """The manifest embedded in a ``.spk``. Shapes: see ``docs/developing/manifest.md``."""

    app: AppInfo
    actions: Annotated[list[Action], Field(min_length=1, max_length=32)]
    continue_command: Command
    permissions: Annotated[list[Permission], Field(max_length=64)] = []
    roles: Annotated[list[Role], Field(max_length=64)] = []
    metadata: Metadata = Metadata()

    @model_validator(mode="after")
    def _cross_check(self) -> Manifest:
        names = [p.name for p in self.permissions]
        if len(set(names)) != len(names):
            raise ValueError("permissions: names must be unique")
        for i, role in enumerate(self.roles):
            for name in role.permissions:
                if name not in names:
                    raise ValueError(f"roles[{i}].permissions: no permission named {name!r}")
            if role.default and role.obsolete:
                raise ValueError(f"roles[{i}]: an obsolete role cannot be the default")
        if sum(r.default for r in self.roles) > 1:
            raise ValueError("roles: at most one role may be the default")
        return self

    @property
    def default_role(self) -> int | None:
        """Position of the role offered first when sharing: the one marked
        ``default``, else the first role not obsolete, else ``None``."""
        for i, role in enumerate(self.roles):
            if role.default:
                return i
        for i, role in enumerate(self.roles):
            if not role.obsolete:
                return i
        return None

    def referenced_paths(self) -> list[str]:
        """Paths inside the package the manifest points to (icons, screenshots)."""
        return self.metadata.icons.paths() + list(self.metadata.screenshots)

    def to_json_bytes(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces, UTF-8): the bytes embedded in a
        ``.spk``, so the same manifest always packs to the same bytes."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True,
                          separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json_bytes(cls, data: bytes) -> Manifest:
        """Parse and validate the manifest of a ``.spk``. Raises InvalidManifest."""
        try:
            raw = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidManifest(f"The manifest is not valid UTF-8 JSON: {exc}.") from None
        return validate_manifest(raw)


class FileSelection(_Strict):
    """``[files]`` of the package definition: source paths (files or directories,
    relative to the source directory) to include, and glob patterns of names to
    leave out (matched against each path and each final component)."""

    include: Annotated[list[PackagePath], Field(min_length=1)]
    exclude: list[Annotated[str, StringConstraints(max_length=200),
                            AfterValidator(_one_line)]] = []


class PackageDefinition(_Strict):
    """The whole ``sandhaven-pkgdef.toml``: the manifest plus ``[files]``."""

    manifest: Manifest
    files: FileSelection


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part != "[key]" and \
                not part.startswith(("function-", "literal[")):
            out += ("." if out else "") + part
    return out or "(top level)"


def _manifest_error(exc: ValidationError, where: str) -> InvalidManifest:
    errors = exc.errors(include_url=False)
    first = errors[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return InvalidManifest(f"{where} field '{_field_path(first['loc'])}': {message}.{more}")


def validate_manifest(raw: Any) -> Manifest:
    """Validate a decoded manifest (dict). Raises InvalidManifest naming the field."""
    if not isinstance(raw, dict):
        raise InvalidManifest("The manifest is not a JSON object.")
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise _manifest_error(exc, "Manifest") from None


def parse_package_definition(text: str, *, source: str = PKGDEF_NAME) -> PackageDefinition:
    """Parse the TOML text of a package definition. Raises InvalidManifest naming
    the file, the field and the problem."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidManifest(f"{source} is not valid TOML: {exc}.") from None
    files = raw.pop("files", None)
    if files is None:
        raise InvalidManifest(f"{source} field 'files': missing ([files] include = [...]).")
    try:
        manifest = Manifest.model_validate(raw)
        selection = FileSelection.model_validate(files)
    except ValidationError as exc:
        title = exc.title
        err = _manifest_error(exc, source)
        if title == "FileSelection":
            err = InvalidManifest(str(err).replace("field '", "field 'files.", 1))
        raise err from None
    return PackageDefinition(manifest=manifest, files=selection)


def load_package_definition(src_dir: Path) -> PackageDefinition:
    """Read ``SRC/sandhaven-pkgdef.toml``. Raises InvalidManifest if missing or invalid."""
    path = src_dir / PKGDEF_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidManifest(f"{path} is missing: every app source needs one.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidManifest(f"{path} cannot be read: {exc}.") from None
    return parse_package_definition(text, source=str(path))


def check_update_keeps_positions(old: Manifest, new: Manifest) -> str | None:
    """Why ``new`` cannot update ``old`` — a permission or role removed or
    reordered — or ``None`` when it can. Shares record positions, so a removed
    permission would silently change what existing shares grant."""
    for i, perm in enumerate(old.permissions):
        if i >= len(new.permissions) or new.permissions[i].name != perm.name:
            return f"permission {i} ({perm.name!r}) was removed or moved; mark it obsolete instead"
    if len(new.roles) < len(old.roles):
        return f"role {len(new.roles)} ({old.roles[len(new.roles)].title!r}) was removed; " \
               "mark it obsolete instead"
    return None
