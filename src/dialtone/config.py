"""Typed configuration: one frozen dataclass, settable by CLI flags and ``DIALTONE_*`` variables.

Every field documents itself (``help`` metadata); the CLI builds its flags from these fields,
so ``dialtone serve --help``, the environment and the README table cannot drift apart (a test
checks the README lists every field).  Precedence: flag > environment variable > default.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, cast
from urllib.parse import urlsplit

from dialtone import ids
from dialtone.errors import ConfigError

LogFormat = Literal["console", "json"]
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
DIGEST_ALGORITHMS: Final = ("MD5", "SHA-256")


def _doc(
    help_text: str,
    *,
    flag: bool = True,
    scope: str = "serve",
    metavar: str | None = None,
) -> dict[str, Any]:
    """Metadata for one setting: its help text, whether it has a CLI flag, where it applies."""
    return {"help": help_text, "flag": flag, "scope": scope, "metavar": metavar}


@dataclass(frozen=True, slots=True)
class OutboundProxy:
    """Where ``<Number>`` legs are sent: ``host[:port][;transport=udp|tcp]``."""

    host: str
    port: int = 5060
    transport: Literal["udp", "tcp"] = "udp"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port};transport={self.transport}"


@dataclass(frozen=True, slots=True)
class Settings:
    """All settings of a dialtone process, with their effective values."""

    sip_host: str = field(
        default="127.0.0.1",
        metadata=_doc("Address SIP listens on (UDP and TCP).", metavar="ADDR"),
    )
    sip_port: int = field(
        default=5060, metadata=_doc("SIP port, for both UDP and TCP.", metavar="PORT")
    )
    http_host: str = field(
        default="127.0.0.1", metadata=_doc("Address the HTTP API listens on.", metavar="ADDR")
    )
    http_port: int = field(default=8080, metadata=_doc("HTTP API port.", metavar="PORT"))
    data_dir: Path = field(
        default=Path("."),
        metadata=_doc(
            "Directory for the SQLite database and other state (created if missing).",
            scope="storage",
            metavar="DIR",
        ),
    )
    database_url: str = field(
        default="",
        metadata=_doc(
            "SQLAlchemy URL of the database; default: sqlite+aiosqlite:///<data-dir>/dialtone.db. "
            "Postgres: postgresql+asyncpg://user:pass@host/db.",
            scope="storage",
            metavar="URL",
        ),
    )
    public_url: str = field(
        default="",
        metadata=_doc(
            "Base URL dialtone is reached at; used for webhook signatures and to resolve "
            "relative URLs. Default: http://<http-host>:<http-port>.",
            metavar="URL",
        ),
    )
    domain: str = field(
        default="",
        metadata=_doc(
            "SIP domain of the Clients and digest realm. Default: the SIP host.", metavar="DOMAIN"
        ),
    )
    outbound_proxy: OutboundProxy | None = field(
        default=None,
        metadata=_doc(
            "host[:port][;transport=udp|tcp] that <Number> calls are sent to. Unset: "
            "<Number> legs fail with a Notification.",
            metavar="HOST:PORT",
        ),
    )
    digest_algorithms: tuple[str, ...] = field(
        default=("MD5",),
        metadata=_doc(
            "Digest algorithms offered in challenges, in order (md5, sha-256). Keep MD5 alone "
            "unless every phone supports SHA-256: baresip 1.0, SIPp 3.6 and sipsak refuse a "
            "challenge list that contains SHA-256.",
            metavar="LIST",
        ),
    )
    rtp_ports: str = field(
        default="20000-29999",
        metadata=_doc(
            "LOW-HIGH range of UDP ports for RTP (even ports; one per call leg).",
            metavar="RANGE",
        ),
    )
    whisper_timeout: float = field(
        default=60.0,
        metadata=_doc(
            "Seconds a Dial branch's whisper may run after it answers before it is declined "
            "(WSP-8).",
            metavar="SECONDS",
        ),
    )
    shutdown_grace: float = field(
        default=10.0,
        metadata=_doc(
            "Seconds to wait on SIGTERM/SIGINT for status callbacks to drain (CB-13).",
            metavar="SECONDS",
        ),
    )
    log_level: str = field(
        default="info", metadata=_doc("debug, info, warning or error.", metavar="LEVEL")
    )
    log_format: LogFormat = field(
        default="console",
        metadata=_doc(
            "console (human-readable) or json (one JSON object per line).",
            scope="all",
            metavar="FORMAT",
        ),
    )
    account_sid: str = field(
        default="",
        metadata=_doc(
            "AccountSid of the account created on first start (AC + 32 lowercase hex). "
            "Default: generated.",
            flag=False,
        ),
    )
    auth_token: str = field(
        default="",
        metadata=_doc(
            "AuthToken of the account (32 lowercase hex). Default: generated on first start; "
            "a changed value updates the stored account.",
            flag=False,
        ),
    )

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'dialtone.db').resolve()}"

    @property
    def effective_public_url(self) -> str:
        """The public base URL (no trailing slash)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{_url_host(self.http_host)}:{self.http_port}"

    @property
    def effective_domain(self) -> str:
        """The SIP domain and digest realm."""
        return self.domain or self.sip_host


def env_name(field_name: str) -> str:
    """The environment variable of a setting: ``sip_port`` → ``DIALTONE_SIP_PORT``."""
    return "DIALTONE_" + field_name.upper()


def flag_name(field_name: str) -> str:
    """The CLI flag of a setting: ``sip_port`` → ``--sip-port``."""
    return "--" + field_name.replace("_", "-")


def setting_fields(scope: str | None = None) -> list[dataclasses.Field[Any]]:
    """The settings' fields, optionally only those that apply to ``scope`` (e.g. storage)."""
    fields = dataclasses.fields(Settings)
    if scope is None:
        return list(fields)
    return [f for f in fields if f.metadata["scope"] in (scope, "all", "storage")]


def load_settings(
    flags: Mapping[str, str | None], environ: Mapping[str, str] | None = None
) -> Settings:
    """Build :class:`Settings` from flag values (by field name) over ``DIALTONE_*`` variables.

    Raises :class:`ConfigError` naming the flag or variable when a value is unusable.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        raw = flags.get(f.name)
        source = flag_name(f.name)
        if raw is None:
            raw = environ.get(env_name(f.name))
            source = env_name(f.name)
        if raw is None:
            continue
        values[f.name] = _convert(f.name, raw, source)
    settings = Settings(**values)
    _check(settings)
    return settings


def _convert(name: str, raw: str, source: str) -> Any:
    """Turn one raw string into the typed value of setting ``name``."""
    raw = raw.strip()
    if name in ("sip_port", "http_port"):
        return _port(raw, source)
    if name == "data_dir":
        return Path(raw)
    if name == "outbound_proxy":
        return parse_outbound_proxy(raw, source) if raw else None
    if name == "rtp_ports":
        low, sep, high = raw.partition("-")
        if not (sep and low.isdigit() and high.isdigit() and 1024 <= int(low) < int(high) <= 65535):
            raise ConfigError(f"{source}: {raw!r} is not LOW-HIGH within 1024-65535")
        return raw
    if name in ("shutdown_grace", "whisper_timeout"):
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{source}: {raw!r} is not a number of seconds") from None
        lowest = 0.0 if name == "shutdown_grace" else 1.0
        if not lowest <= value <= 3600:
            raise ConfigError(f"{source}: {raw!r} is out of range ({lowest:g}-3600)")
        return value
    if name == "digest_algorithms":
        return _algorithms(raw, source)
    if name == "log_level":
        if raw.lower() not in LOG_LEVELS:
            raise ConfigError(f"{source}: {raw!r} is not one of {', '.join(LOG_LEVELS)}")
        return raw.lower()
    if name == "log_format":
        if raw not in ("console", "json"):
            raise ConfigError(f"{source}: {raw!r} is not 'console' or 'json'")
        return cast(LogFormat, raw)
    if name == "public_url":
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{source}: {raw!r} is not an absolute http(s) URL")
        return raw
    if name in ("sip_host", "http_host"):
        return _address(raw, source)
    return raw


def _check(settings: Settings) -> None:
    """Cross-field checks and formats of secrets."""
    if settings.account_sid and not ids.is_sid(settings.account_sid, ids.ACCOUNT):
        raise ConfigError(
            f"{env_name('account_sid')}: {settings.account_sid!r} is not 'AC' followed by "
            "32 lowercase hex digits"
        )
    if settings.auth_token and not ids.is_auth_token(settings.auth_token):
        raise ConfigError(f"{env_name('auth_token')}: not 32 lowercase hex digits")


def _port(raw: str, source: str) -> int:
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise ConfigError(f"{source}: {raw!r} is not a port number (0-65535)")
    return int(raw)


def _address(raw: str, source: str) -> str:
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        if raw != "localhost":
            raise ConfigError(
                f"{source}: {raw!r} is not an IP address (use e.g. 127.0.0.1 or ::1)"
            ) from None
        return "127.0.0.1"
    return raw


def _algorithms(raw: str, source: str) -> tuple[str, ...]:
    names: list[str] = []
    for token in re.split(r"[,\s]+", raw):
        if not token:
            continue
        upper = token.upper()
        if upper not in DIGEST_ALGORITHMS:
            raise ConfigError(f"{source}: unknown digest algorithm {token!r} (md5, sha-256)")
        if upper not in names:
            names.append(upper)
    if not names:
        raise ConfigError(f"{source}: at least one digest algorithm is needed")
    return tuple(names)


_PROXY_RE: Final = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.\-]+))"
    r"(?::(?P<port>\d{1,5}))?(?:;transport=(?P<transport>udp|tcp))?$",
    re.IGNORECASE,
)


def parse_outbound_proxy(raw: str, source: str = flag_name("outbound_proxy")) -> OutboundProxy:
    """Parse ``host[:port][;transport=udp|tcp]``; raise :class:`ConfigError` when malformed."""
    match = _PROXY_RE.match(raw.strip())
    if match is None:
        raise ConfigError(f"{source}: {raw!r} is not host[:port][;transport=udp|tcp]")
    port = int(match.group("port") or 5060)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{source}: port {port} is out of range")
    transport = (match.group("transport") or "udp").lower()
    host = match.group("v6") or match.group("host")
    return OutboundProxy(host=host, port=port, transport=cast(Literal["udp", "tcp"], transport))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
