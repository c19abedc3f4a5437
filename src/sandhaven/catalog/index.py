"""The catalog's index and per-app detail files, as read from an untrusted catalog
(docs/reference/catalog-format.md).

:func:`parse_index` and :func:`parse_detail` turn bytes into validated, frozen
objects or raise :class:`~sandhaven.errors.CatalogError` with one line naming the
field and the problem. Every text has a length cap and no control characters
where one line is expected; every path is a safe relative name inside its own
folder of the catalog (``packages/``, ``icons/``, ``apps/``, ``screenshots/``),
so nothing from the index can point outside the catalog or at another host.
"""

from __future__ import annotations

import json
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
from sandhaven.errors import CatalogError
from sandhaven.packages.ids import APP_ID_RE, PACKAGE_ID_RE
from sandhaven.packages.manifest import CATEGORIES, License, Line, Text, Title, Url

#: Formats this reader understands; 1 lacks ``detail``. See the format page.
FORMATS = (1, 2)
INDEX_FORMAT = 2
MAX_APPS = 1000

#: Largest files read from a catalog, in bytes.
MAX_INDEX_BYTES = 4 << 20
MAX_DETAIL_BYTES = 256 << 10
MAX_ICON_BYTES = 256 << 10
MAX_SCREENSHOT_BYTES = 4 << 20

#: Image types served from a catalog, by suffix (only these; never HTML).
IMAGE_TYPES = {".svg": "image/svg+xml", ".png": "image/png"}


def _under(folder: str, *suffixes: str):  # type: ignore[no-untyped-def]
    def check(value: str) -> str:
        if not value:
            return value
        if (not pathsafety.is_safe_relative(value) or not value.startswith(folder + "/")
                or not value.lower().endswith(suffixes)):
            raise ValueError(f"must be a path under {folder}/ ending in {' or '.join(suffixes)}")
        return value
    return check


def _catalog_path(folder: str, *suffixes: str):  # type: ignore[no-untyped-def]
    return Annotated[str, StringConstraints(max_length=300),
                     AfterValidator(_under(folder, *suffixes))]


AppId = Annotated[str, StringConstraints(pattern=f"^{APP_ID_RE.pattern}$")]
PackageId = Annotated[str, StringConstraints(pattern=f"^{PACKAGE_ID_RE.pattern}$")]
PackagePath = _catalog_path("packages", ".spk")
IconPath = _catalog_path("icons", *IMAGE_TYPES)
DetailPath = _catalog_path("apps", ".json")
ScreenshotPath = _catalog_path("screenshots", *IMAGE_TYPES)
ShortText = Annotated[str, StringConstraints(max_length=100), AfterValidator(
    lambda v: v if pathsafety.bad_char(v) is None else _raise("must be one line"))]


def _raise(message: str) -> str:
    raise ValueError(message)


class _Strict(BaseModel):
    # Unknown fields are errors: a new field means a new format number.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CatalogEntry(_Strict):
    """One app of the index: its newest package in the catalog."""

    app_id: AppId
    title: Title
    short_description: ShortText = ""
    categories: Annotated[list[Literal[CATEGORIES]], Field(max_length=11)] = []  # type: ignore[valid-type]
    license: License | None = None
    author: Line = ""
    marketing_version: Annotated[str, StringConstraints(max_length=64)] = ""
    version: Annotated[int, Field(ge=0, le=0xFFFFFFFF)]
    package_id: PackageId
    package: PackagePath
    size: Annotated[int, Field(ge=1, le=1 << 44)]
    icon: IconPath = ""
    detail: DetailPath = ""


class CatalogIndex(_Strict):
    """The whole ``index.json``: a format number and the apps, app IDs unique."""

    format: int
    apps: Annotated[list[CatalogEntry], Field(max_length=MAX_APPS)]

    @model_validator(mode="after")
    def _check(self) -> CatalogIndex:
        if self.format not in FORMATS:
            raise ValueError(f"format {self.format} is not one this server reads "
                             f"({', '.join(map(str, FORMATS))})")
        ids = [a.app_id for a in self.apps]
        if len(set(ids)) != len(ids):
            raise ValueError("apps: an app ID appears twice")
        return self

    def find(self, app_id: str) -> CatalogEntry | None:
        return next((a for a in self.apps if a.app_id == app_id), None)


class AppDetail(_Strict):
    """An app's detail file: long description (Markdown), links, screenshots,
    change log — all from the package's manifest."""

    app_id: AppId
    description: Text = ""
    website: Url = ""
    code_url: Url = ""
    screenshots: Annotated[list[ScreenshotPath], Field(max_length=20)] = []
    change_log: Text = ""


def _where(exc: ValidationError) -> str:
    err = exc.errors()[0]
    path = ""
    for part in err["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return f"{path or 'top level'}: {err['msg']}"


def _load(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CatalogError(f"The catalog's {what} is not JSON: {exc}.") from None


def parse_index(data: bytes) -> CatalogIndex:
    """Validate ``index.json`` bytes. Raises CatalogError naming the first bad field."""
    raw = _load(data, "index")
    try:
        return CatalogIndex.model_validate(raw)
    except ValidationError as exc:
        raise CatalogError(f"The catalog's index is malformed: {_where(exc)}.") from None


def parse_detail(data: bytes, app_id: str) -> AppDetail:
    """Validate a detail file of ``app_id``. Raises CatalogError naming the first bad
    field, or when the file describes another app."""
    raw = _load(data, f"detail file of app {app_id}")
    try:
        detail = AppDetail.model_validate(raw)
    except ValidationError as exc:
        raise CatalogError(f"The catalog's detail file of app {app_id} is malformed: "
                           f"{_where(exc)}.") from None
    if detail.app_id != app_id:
        raise CatalogError(f"The catalog's detail file of app {app_id} describes another app.")
    return detail
