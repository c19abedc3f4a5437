"""The one settings table: defaults, the TOML config file, ``SANDHAVEN_*`` variables and flags.

Every setting is declared once in :data:`SETTINGS`. From that table come the
command-line flags of ``sandhaven serve``, the environment variable names, the
validation of every value, and the documented sample config
(``sandhaven config sample``; ``docs/administering/settings.md``).

Precedence, lowest first: built-in default, config file, environment, flag.

A setting named ``smtp.host`` is ``host`` in the ``[smtp]`` table of the config
file, ``SANDHAVEN_SMTP_HOST`` in the environment and ``--smtp-host`` on the
command line. Top-level settings (``port``) have no table.

Errors: :class:`~sandhaven.errors.ConfigError`, whose message names the setting,
the value and what is wrong ("Setting 'port' has value 'x': not a valid integer.").
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sandhaven.errors import ConfigError


class Secret(str):
    """A string whose ``repr`` is masked, so it never lands in a log or traceback."""

    def __repr__(self) -> str:
        return "Secret('**********')" if self else "Secret('')"


def _parse_int(lo: int, hi: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("not a valid integer")
        if isinstance(value, str):
            try:
                value = int(value.strip(), 10)
            except ValueError:
                raise ValueError("not a valid integer") from None
        if not isinstance(value, int):
            raise ValueError("not a valid integer")
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return value

    return parse


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
    raise ValueError("not a valid boolean (use true or false)")


def _parse_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("not a string")
    if "\n" in value or "\r" in value or "\x00" in value:
        raise ValueError("must be a single line")
    return value


def _parse_secret(value: Any) -> Secret:
    return Secret(_parse_str(value))


def _parse_choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        value = _parse_str(value).strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def _parse_path(value: Any) -> Path:
    value = _parse_str(value)
    if not value.strip():
        raise ValueError("must not be empty")
    return Path(value).expanduser()


def _parse_http_url(value: Any) -> str:
    value = _parse_str(value).strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http:// or https:// URL")
    if parts.path or parts.query or parts.fragment:
        raise ValueError("must be scheme://host[:port] with no path")
    return value


def _parse_catalog_source(value: Any) -> str:
    value = _parse_str(value).strip()
    if value.startswith(("http://", "https://")):
        parts = urlsplit(value)
        if not parts.hostname or parts.query or parts.fragment:
            raise ValueError("not an http:// or https:// URL of a catalog directory")
        return value.rstrip("/")
    if "://" in value:
        raise ValueError("must be an http:// or https:// URL or a directory path")
    return str(Path(value).expanduser()) if value else ""


def _parse_catalog_key(value: Any) -> str:
    value = _parse_str(value).strip()
    if value and not re.fullmatch(r"[0123456789acdefghjkmnpqrstuvwxyz]{52}", value):
        raise ValueError("not a catalog public key (52 characters of Sandstorm base32)")
    return value


def _parse_wildcard(value: Any) -> str:
    value = _parse_str(value).strip().lower()
    if not value.startswith("*.") or "/" in value or len(value) < 4:
        raise ValueError("must look like *.example.org or *.localhost:6080")
    host = value[2:].rsplit(":", 1)
    if len(host) == 2 and not host[1].isdigit():
        raise ValueError("has a port that is not a number")
    return value


def _parse_host(value: Any) -> str:
    value = _parse_str(value).strip()
    if not value or any(c.isspace() for c in value):
        raise ValueError("not a host name or address")
    return value


def _parse_email_or_empty(value: Any) -> str:
    value = _parse_str(value).strip()
    if value and "@" not in value:
        raise ValueError("not an email address")
    return value


def _parse_address_list(value: Any) -> tuple[str, ...]:
    import ipaddress

    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, list):
        items = [str(v).strip() for v in value]
    else:
        raise ValueError("not a list of addresses")
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return tuple(items)


@dataclass(frozen=True)
class Setting:
    """One row of the settings table.

    ``name`` is dotted (``smtp.host``); ``parse`` turns a raw value (TOML value
    or string) into the typed value or raises ``ValueError`` with the reason;
    ``default`` is the raw default; ``secret`` masks the value in logs and dumps.
    """

    name: str
    default: Any
    parse: Callable[[Any], Any]
    help: str
    kind: str = "string"
    secret: bool = False
    admin_editable: bool = False

    @property
    def env(self) -> str:
        return "SANDHAVEN_" + self.name.replace(".", "_").upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace(".", "-").replace("_", "-")

    @property
    def attr(self) -> str:
        return self.name.replace(".", "_")


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "sandhaven")


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", _default_data_dir(), _parse_path,
            "Directory holding the store, packages, grains and keys.", kind="path"),
    Setting("listen_host", "127.0.0.1", _parse_host,
            "Address the HTTP listener binds to."),
    Setting("port", 6080, _parse_int(1, 65535), "TCP port of the HTTP listener.", kind="integer"),
    Setting("base_url", "http://localhost:6080", _parse_http_url,
            "Public URL of the shell, as browsers reach it (scheme://host[:port]). "
            "Unless set, it follows the port: http://localhost:PORT."),
    Setting("wildcard_host", "*.localhost:6080", _parse_wildcard,
            "Wildcard host under which session hosts and the API host live. "
            "Unless set, it follows the port: *.localhost:PORT."),
    Setting("database_url", "", _parse_str,
            "SQLAlchemy URL of the store; empty means SQLite at DATA_DIR/sandhaven.sqlite3.",
            secret=True),
    Setting("log_level", "info", _parse_choice("debug", "info", "warning", "error"),
            "Lowest level of log events written to standard error."),
    Setting("log_format", "json", _parse_choice("json", "console"),
            "json: one JSON object per line; console: one readable line per event."),
    Setting("dev", False, _parse_bool,
            "Development mode: one-click login as named test users. Never in production.",
            kind="boolean"),
    Setting("signup_policy", "invite", _parse_choice("invite", "open"),
            "Who may create an account: invite (admins invite) or open (anyone with an "
            "email address).", admin_editable=True),
    Setting("session_days", 30, _parse_int(1, 365),
            "Days a login session lasts without use before it expires.", kind="integer"),
    Setting("max_body_bytes", 1048576, _parse_int(1024, 1 << 40),
            "Largest request body the shell and API accept, in bytes "
            "(uploads of packages and backups have their own limits).", kind="integer"),
    Setting("trusted_proxies", "", _parse_address_list,
            "Comma-separated addresses of reverse proxies whose X-Forwarded-* headers "
            "are trusted; empty trusts none.", kind="list"),
    Setting("grains.idle_timeout", 300, _parse_int(5, 7 * 86400),
            "Seconds a grain keeps running with no request, no open stream or "
            "WebSocket, before it is stopped.", kind="integer"),
    Setting("grains.memory_limit", 1024, _parse_int(16, 1 << 20),
            "Memory limit of one grain, in MiB (all its processes together); past it "
            "the kernel kills the grain's largest process.", kind="integer"),
    Setting("grains.max_processes", 512, _parse_int(8, 1 << 20),
            "Most processes and threads one grain may have at once.", kind="integer"),
    Setting("grains.tmp_size", 16, _parse_int(1, 1 << 20),
            "Size cap of a grain's /tmp (memory-backed, counted in its memory limit), "
            "in MiB.", kind="integer"),
    Setting("grains.stop_timeout", 10, _parse_int(1, 3600),
            "Seconds a stopping grain gets after SIGTERM before it is killed.",
            kind="integer"),
    Setting("grains.start_timeout", 60, _parse_int(1, 3600),
            "Seconds a starting grain gets to answer HTTP before the start fails.",
            kind="integer"),
    Setting("grains.log_size", 1024, _parse_int(4, 1 << 20),
            "Size cap of a grain's log (its standard output and error), in KiB; "
            "older lines are dropped first.", kind="integer"),
    Setting("grains.trash_days", 30, _parse_int(1, 3650),
            "Days a grain stays in the trash, restorable, before it is purged with its "
            "storage.", kind="integer"),
    Setting("grains.quota_mib", 0, _parse_int(0, 1 << 40),
            "Storage one user's grains may use in total, in MiB; 0 means no limit. "
            "Restoring a backup past it is refused.", kind="integer"),
    Setting("grains.max_restore_mib", 65536, _parse_int(1, 1 << 40),
            "Largest grain backup file a restore accepts, in MiB.", kind="integer"),
    Setting("sharing.anonymous", True, _parse_bool,
            "Whether visitors who are not logged in may open sharing links (as Anonymous "
            "User). Off: they must log in first.", kind="boolean", admin_editable=True),
    Setting("sharing.access_log_days", 365, _parse_int(1, 36500),
            "Days each grain's access log keeps a row (who opened it, when, from where).",
            kind="integer"),
    Setting("sandbox.grain_uid", 64999, _parse_int(1, (1 << 32) - 2),
            "Unprivileged host user (and group) ID that grain processes run as when "
            "the server runs as root. It needs no account; give it no other use.",
            kind="integer"),
    Setting("sandbox.runtime_dir", "/run/sandhaven", _parse_path,
            "Directory for grain sockets and per-start files when running as root "
            "(one subdirectory per data dir; otherwise DATA_DIR/run is used); emptied "
            "at every start. Every ancestor must be searchable by the grain uid.",
            kind="path"),
    Setting("smtp.host", "", _parse_str,
            "SMTP server for outgoing mail (login links, invitations); empty disables mail.",
            admin_editable=True),
    Setting("smtp.port", 25, _parse_int(1, 65535), "SMTP server port.", kind="integer",
            admin_editable=True),
    Setting("smtp.security", "none", _parse_choice("none", "starttls", "tls"),
            "none, starttls (upgrade after connecting) or tls (implicit TLS, usually port 465).",
            admin_editable=True),
    Setting("smtp.user", "", _parse_str, "SMTP user name; empty means no authentication.",
            admin_editable=True),
    Setting("smtp.password", "", _parse_secret, "SMTP password.", secret=True,
            admin_editable=True),
    Setting("smtp.from_address", "sandhaven@localhost", _parse_email_or_empty,
            "From address of mail the server sends.", admin_editable=True),
    Setting("packages.max_spk_bytes", 2 << 30, _parse_int(1024, 1 << 44),
            "Largest .spk file accepted for install or upload, in bytes.", kind="integer"),
    Setting("packages.max_unpacked_bytes", 4 << 30, _parse_int(1024, 1 << 44),
            "Largest total size of the files in one package once unpacked, in bytes "
            "(stops decompression bombs).", kind="integer"),
    Setting("packages.max_entries", 100_000, _parse_int(1, 10_000_000),
            "Most files, directories and symlinks one package may hold.", kind="integer"),
    Setting("catalog.source", "", _parse_catalog_source,
            "Where the App market reads its catalog: an http:// or https:// URL of a "
            "catalog directory, or a directory path. Empty means DATA_DIR/catalog, the "
            "catalog scripts/serve.sh builds from the recipes in apps/."),
    Setting("catalog.key", "", _parse_catalog_key,
            "Public half of the catalog key (52 characters, as `sandhaven catalog build` "
            "prints it): the catalog's index must carry a valid signature by it. Empty: "
            "for the default catalog, the key in DATA_DIR/app-keys/catalog.key when it "
            "exists; for another source, the index is not checked (packages always are)."),
    Setting("packages.unpack_sandbox", "bubblewrap", _parse_choice("bubblewrap", "none"),
            "Where packages are unpacked: bubblewrap (a sandbox with no network and one "
            "writable directory, a second wall behind the archive checks) or none (in the "
            "server process; only where bubblewrap cannot run)."),
    Setting("storage.encryption", True, _parse_bool,
            "Encrypt at rest (gocryptfs): each grain's storage, the store, grain logs, "
            "uploads and temporary files. false is for development only: loud in the log "
            "and on every admin page.", kind="boolean"),
    Setting("storage.key_source", "file", _parse_choice("file", "passphrase"),
            "Where the key-encryption key comes from: file (DATA_DIR/keys/kek, made at "
            "first start; back it up elsewhere) or passphrase (the server starts sealed "
            "until an admin enters it; see `sandhaven keys init`)."),
    Setting("storage.gocryptfs", "gocryptfs", _parse_str,
            "The gocryptfs program (a name looked up in PATH, or a path)."),
    Setting("storage.fuse_device", "/dev/fuse", _parse_path,
            "The FUSE device gocryptfs needs; checked at start.", kind="path"),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
BY_ATTR: dict[str, str] = {s.attr: s.name for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """The effective, validated settings. Attribute names are the setting names with
    dots replaced by underscores (``smtp_host``)."""

    values: Mapping[str, Any] = field(default_factory=dict)
    # Where each value came from: "default", "config file …", "environment …", "flag …".
    sources: Mapping[str, str] = field(default_factory=dict)

    def __getattr__(self, attr: str) -> Any:
        values = object.__getattribute__(self, "values")
        name = BY_ATTR.get(attr)
        if name is None or name not in values:
            raise AttributeError(attr)
        return values[name]

    def get(self, name: str) -> Any:
        return self.values[name]

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed; each new value is validated."""
        values = dict(self.values)
        for key, raw in changes.items():
            setting = BY_NAME[BY_ATTR.get(key, key)]
            values[setting.name] = _validate(setting, raw, "argument")
        return Settings(values, self.sources)

    def is_set(self, name: str) -> bool:
        """True when the setting was given (file, environment, flag), not defaulted."""
        return self.sources.get(name, "default") != "default"

    def redacted(self) -> dict[str, Any]:
        """The settings as plain values, secrets masked: safe for logs."""
        return {
            name: ("**********" if BY_NAME[name].secret and value else
                   str(value) if isinstance(value, Path) else value)
            for name, value in self.values.items()
        }

    @property
    def database(self) -> str:
        return self.values["database_url"] or (
            "sqlite:///" + str(Path(self.values["data_dir"]) / "sandhaven.sqlite3")
        )

    @property
    def https(self) -> bool:
        return self.values["base_url"].startswith("https://")


def _validate(setting: Setting, raw: Any, source: str) -> Any:
    try:
        return setting.parse(raw)
    except ValueError as exc:
        shown = "**********" if setting.secret else raw
        raise ConfigError(
            f"Setting '{setting.name}' has value {str(shown)!r} (from {source}): {exc}."
        ) from None


def _flatten_toml(data: Mapping[str, Any], path: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                if isinstance(subvalue, dict):
                    raise ConfigError(f"Config file {path}: table '{key}.{sub}' is not a setting.")
                flat[f"{key}.{sub}"] = subvalue
        else:
            flat[key] = value
    return flat


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML config file into ``{setting name: raw value}``.

    Raises ConfigError for a missing or unreadable file, bad TOML, or an unknown key.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Config file {path} cannot be read: {exc.strerror}.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"Config file {path} is not UTF-8 text.") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Config file {path} is not valid TOML: {exc}.") from None
    flat = _flatten_toml(data, str(path))
    for name in flat:
        if name not in BY_NAME:
            raise ConfigError(f"Config file {path} has unknown setting '{name}'.")
    return flat


def load_settings(
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the effective settings from defaults, file, environment and flags.

    ``overrides`` maps setting names to raw values from the command line; ``None``
    values are ignored. Unknown ``SANDHAVEN_*`` variables are an error, except
    ``SANDHAVEN_CONFIG`` which names the config file.

    Raises ConfigError naming the setting, the value and the problem.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, tuple[Any, str]] = {s.name: (s.default, "default") for s in SETTINGS}
    if config_file is None and environ.get("SANDHAVEN_CONFIG"):
        config_file = Path(environ["SANDHAVEN_CONFIG"])
    if config_file is not None:
        for name, value in read_config_file(config_file).items():
            raw[name] = (value, f"config file {config_file}")
    by_env = {s.env: s for s in SETTINGS}
    for key, value in environ.items():
        if not key.startswith("SANDHAVEN_") or key == "SANDHAVEN_CONFIG":
            continue
        setting = by_env.get(key)
        if setting is None:
            raise ConfigError(f"Environment variable {key} is not a Sandhaven setting.")
        raw[setting.name] = (value, f"environment {key}")
    for name, value in (overrides or {}).items():
        if value is not None:
            raw[name] = (value, f"flag {BY_NAME[name].flag}")
    values = {name: _validate(BY_NAME[name], value, src) for name, (value, src) in raw.items()}
    # The embedded defaults follow the port, so `serve --port 7000` just works.
    if raw["base_url"][1] == "default":
        values["base_url"] = f"http://localhost:{values['port']}"
    if raw["wildcard_host"][1] == "default":
        values["wildcard_host"] = f"*.localhost:{values['port']}"
    return Settings(values, {name: src for name, (_, src) in raw.items()})


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def sample_config() -> str:
    """The documented sample config file: every setting commented out at its default."""
    lines = [
        "# Sandhaven configuration (TOML). Every setting is shown at its default.",
        "# Environment variables SANDHAVEN_<NAME> and command-line flags override this file.",
        "",
    ]
    current_table = ""
    for setting in sorted(SETTINGS, key=lambda s: ("." in s.name, s.name.split(".")[0])):
        table, _, key = setting.name.rpartition(".")
        if table != current_table:
            lines += ["", f"[{table}]"]
            current_table = table
        default = setting.default
        if setting.name == "data_dir":
            default = "~/.local/share/sandhaven"
        lines.append(f"# {setting.help}")
        lines.append(f"# env {setting.env}, flag {setting.flag}")
        lines.append(f"#{key} = {_toml_value(default)}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def settings_markdown() -> str:
    """``docs/administering/settings.md``: every setting with its default, variable,
    flag and meaning. A test keeps the committed page equal to this output."""
    lines = [
        "# Settings",
        "",
        "Every setting can be given, from lowest to highest precedence, as its built-in",
        "default, in the TOML config file (`--config FILE` or `SANDHAVEN_CONFIG`), as an",
        "environment variable, or as a flag of `sandhaven serve`. `sandhaven config sample`",
        "prints a config file with every setting; `sandhaven config check` validates them.",
        "Settings marked *admin* can also be changed in the shell's Admin → Settings page;",
        "a value saved there overrides the others until changed again.",
        "",
        "Generated by `make docs` (`sandhaven config docs`); do not edit by hand.",
        "",
        "| setting | default | environment | flag | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in SETTINGS:
        default = "~/.local/share/sandhaven" if s.name == "data_dir" else s.default
        shown = f"`{_toml_value(default)}`" if default not in ("", ()) else "(empty)"
        table, _, key = s.name.rpartition(".")
        where = f"`[{table}]` `{key}`" if table else f"`{key}`"
        admin = " *admin*" if s.admin_editable else ""
        secret = " Secret: never logged." if s.secret else ""
        lines.append(f"| {where} | {shown} | `{s.env}` | `{s.flag}` | "
                     f"{s.help}{secret}{admin} |")
    return "\n".join(lines) + "\n"
