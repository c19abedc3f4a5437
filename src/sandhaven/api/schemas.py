"""Request and response bodies of ``/api/v1`` (pydantic models, so the OpenAPI
description is generated from the same code that validates)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictInt


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Me(BaseModel):
    id: str
    email: str
    name: str
    is_admin: bool
    handle: str
    picture_url: str
    pronouns: str


class ProfilePatch(Strict):
    name: str | None = Field(None, max_length=200)
    handle: str | None = Field(None, max_length=64)
    picture_url: str | None = Field(None, max_length=2000)
    pronouns: str | None = Field(None, max_length=16)


class User(BaseModel):
    id: str
    email: str
    name: str
    is_admin: bool
    suspended: bool
    created_at: datetime
    last_login_at: datetime | None


class UserCreate(Strict):
    email: str = Field(max_length=320)
    name: str = Field(max_length=200)
    is_admin: bool = False


class UserPatch(Strict):
    is_admin: bool | None = None
    suspended: bool | None = None


class TokenCreate(Strict):
    label: str = Field("", max_length=200)


class Token(BaseModel):
    id: int
    label: str
    created_at: datetime
    last_used_at: datetime | None


class TokenCreated(Token):
    token: str


class InviteCreate(Strict):
    email: str | None = Field(None, max_length=320)
    note: str = Field("", max_length=200)


class Invite(BaseModel):
    id: int
    email: str | None
    note: str
    created_at: datetime
    expires_at: datetime
    state: str


class InviteCreated(Invite):
    url: str


class ServerSettings(BaseModel):
    signup_policy: str
    smtp_host: str
    smtp_port: int
    smtp_security: str
    smtp_user: str
    smtp_from_address: str
    smtp_password_set: bool
    sharing_anonymous: bool = Field(description="Visitors who are not logged in may open "
                                                "sharing links as Anonymous User")


class ServerSettingsPatch(Strict):
    signup_policy: str | None = None
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_security: str | None = None
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from_address: str | None = None
    sharing_anonymous: bool | None = None


class LoginRequest(Strict):
    email: str = Field(max_length=320)


class Error(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: Error


class PackageInstalled(BaseModel):
    app_id: str = Field(description="52 characters of Sandstorm base32: the signing key")
    package_id: str = Field(description="32 hex: first 16 bytes of SHA-256 of the .spk")
    version: int
    title: str


class InstalledApp(BaseModel):
    app_id: str
    package_id: str = Field(description="the newest installed package of the app")
    title: str
    version: int
    marketing_version: str
    short_description: str
    actions: list[str] = Field(description="noun phrases of the app's actions")
    package_ids: list[str] = Field(description="every installed package, newest first")


class GrainCreate(Strict):
    app_id: str = Field(max_length=64)
    action: int | str = Field(0, description="The action's position or its noun phrase.")
    title: str = Field(max_length=500)


class GrainPatch(Strict):
    title: str = Field(max_length=500)


class BackupRequest(Strict):
    """An encrypted backup: OpenPGP with this passphrase (8 to 1,000 characters)."""

    passphrase: str = Field(min_length=8, max_length=1000)


class Grain(BaseModel):
    id: str
    title: str
    owner_id: str
    app_id: str
    app_title: str
    package_id: str
    state: str = Field(description="stopped, starting, running or crashed")
    created_at: str
    last_used_at: str | None
    size_bytes: int
    trashed_at: str | None
    crash_reason: str | None


class GrainSession(BaseModel):
    url: str = Field(description="The iframe's first URL: the session host's init path.")
    host: str
    expires: str


class GrainTokenCreate(Strict):
    role: StrictInt | None = Field(None, description="Role position; null for full access.")
    label: str = Field("", max_length=200)


class GrainToken(BaseModel):
    id: int
    label: str
    role: int | None
    created_at: str
    last_used_at: str | None


class GrainTokenCreated(GrainToken):
    token: str
    url: str = Field(description="The API host's URL.")
    webkey: str = Field(description="<url>#<token>, for clients that take one string.")


class ShareCreate(Strict):
    role: StrictInt = Field(description="Role position in the app's manifest.")
    label: str = Field("", max_length=200, description="A link's label")
    email: str | None = Field(None, max_length=320, description="Share with this person "
                              "instead of making a link (a mail tells them)")
    message: str = Field("", max_length=1000, description="Added to the invitation mail")


class SharePatch(Strict):
    role: StrictInt = Field(description="The new role position.")


class ShareEntry(BaseModel):
    id: int
    kind: str = Field(description="link or person")
    label: str
    role: int
    role_title: str
    recipient: dict[str, str] | None = Field(description="{id, name} of a person; null "
                                                         "for a link")
    created_by: dict[str, str] = Field(description="{id, name} of who added it")
    parent_id: int | None = Field(description="The share it was re-shared from")
    created_at: str
    last_used_at: str | None
    can_change: bool = Field(description="Whether the caller may change or revoke it")
    permissions: list[str] = Field(description="What it grants now: its role's "
                                   "permissions capped along the chain it came from")
    follows_link: bool = Field(default=False, description="A person's grant taken from a "
                               "link: its role is the link's current role, changed only "
                               "on the link")


class ShareCreated(ShareEntry):
    url: str | None = Field(description="A link's <base>/shared/<token>, shown only once; "
                                        "null for an invitation by address")


class AccessLogRow(BaseModel):
    at: str
    grain_id: str
    grain_title: str
    user_id: str | None = Field(description="null for an anonymous link holder")
    user_name: str
    identity_id: str | None = Field(description="The per-grain user ID the app saw")
    via: str = Field(description="owner, share, link or token")
    label: str = Field(description="The share's or token's label")
    role: int | None
    permissions: list[str]
    client_ip: str
    user_agent: str


class AccessRequestCreate(Strict):
    message: str = Field("", max_length=1000)


class AccessRequestGrant(Strict):
    role: StrictInt = Field(description="Role position to grant")


class AccessRequestEntry(BaseModel):
    id: int
    user: dict[str, str] = Field(description="{id, name, email} of who asks")
    message: str
    created_at: str
