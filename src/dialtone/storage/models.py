"""Database tables (SQLAlchemy 2 declarative, typed).

Times are stored as naive UTC and read back as aware UTC (:class:`UTCDateTime`), so SQLite
and Postgres behave the same.  Every table has an integer surrogate key ``id`` (stable
ordering for paging) and the public SID as a unique column.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime stored as a naive UTC timestamp."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store naive UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Read back aware UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base of dialtone's tables."""


class Account(Base):
    """The tenant: AccountSid, AuthToken and status."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sid: Mapped[str] = mapped_column(String(34), unique=True)
    friendly_name: Mapped[str] = mapped_column(String(64))
    auth_token: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="active")
    date_created: Mapped[datetime] = mapped_column(UTCDateTime())
    date_updated: Mapped[datetime] = mapped_column(UTCDateTime())


class Client(Base):
    """A named SIP user of an account; its password is kept only as digest HA1s."""

    __tablename__ = "clients"
    __table_args__ = (UniqueConstraint("account_sid", "login", name="uq_clients_login"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sid: Mapped[str] = mapped_column(String(34), unique=True)
    account_sid: Mapped[str] = mapped_column(ForeignKey("accounts.sid", ondelete="CASCADE"))
    login: Mapped[str] = mapped_column(String(64))
    friendly_name: Mapped[str] = mapped_column(String(64))
    ha1_md5: Mapped[str] = mapped_column(String(32))
    ha1_sha256: Mapped[str] = mapped_column(String(64))
    ha1_realm: Mapped[str] = mapped_column(String(255))
    voice_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    voice_method: Mapped[str] = mapped_column(String(8), default="POST")
    voice_fallback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    voice_fallback_method: Mapped[str] = mapped_column(String(8), default="POST")
    api_version: Mapped[str] = mapped_column(String(10))
    date_created: Mapped[datetime] = mapped_column(UTCDateTime())
    date_updated: Mapped[datetime] = mapped_column(UTCDateTime())


class PhoneNumber(Base):
    """An IncomingPhoneNumber: INVITEs to it run its VoiceUrl."""

    __tablename__ = "incoming_phone_numbers"
    __table_args__ = (
        UniqueConstraint("account_sid", "phone_number", name="uq_numbers_phone_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sid: Mapped[str] = mapped_column(String(34), unique=True)
    account_sid: Mapped[str] = mapped_column(ForeignKey("accounts.sid", ondelete="CASCADE"))
    phone_number: Mapped[str] = mapped_column(String(21))
    friendly_name: Mapped[str] = mapped_column(String(64))
    voice_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    voice_method: Mapped[str] = mapped_column(String(8), default="POST")
    voice_fallback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    voice_fallback_method: Mapped[str] = mapped_column(String(8), default="POST")
    status_callback: Mapped[str | None] = mapped_column(Text, nullable=True)
    status_callback_method: Mapped[str] = mapped_column(String(8), default="POST")
    api_version: Mapped[str] = mapped_column(String(10))
    date_created: Mapped[datetime] = mapped_column(UTCDateTime())
    date_updated: Mapped[datetime] = mapped_column(UTCDateTime())


class Registration(Base):
    """One registered device (binding) of a Client, kept so bindings survive a restart."""

    __tablename__ = "registrations"
    __table_args__ = (
        UniqueConstraint("client_sid", "contact", name="uq_registrations_contact"),
        Index("ix_registrations_expires", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_sid: Mapped[str] = mapped_column(ForeignKey("clients.sid", ondelete="CASCADE"))
    contact: Mapped[str] = mapped_column(Text)
    call_id: Mapped[str] = mapped_column(Text)
    cseq: Mapped[int] = mapped_column(Integer)
    transport: Mapped[str] = mapped_column(String(8))
    source_host: Mapped[str] = mapped_column(String(64))
    source_port: Mapped[int] = mapped_column(Integer)
    user_agent: Mapped[str | None] = mapped_column(Text, nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
