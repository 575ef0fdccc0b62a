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
    SmallInteger,
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


class Call(Base):
    """One leg (CDR): a SIP dialog or dialog attempt with one remote party (API-23).

    Written by :class:`dialtone.calls.records.CallRecords`, read by the REST API.  ``from_``
    and ``to`` are stored as ``from_number``/``to_number`` (``from`` and ``to`` are SQL
    keywords).  ``parent_call_sid`` is deliberately not a foreign key: each call's writes are
    ordered only among themselves, so a branch row may be committed before its parent's.
    """

    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_account_created", "account_sid", "date_created", "id"),
        Index("ix_calls_account_to", "account_sid", "to_number"),
        Index("ix_calls_account_from", "account_sid", "from_number"),
        Index("ix_calls_account_status", "account_sid", "status"),
        Index("ix_calls_account_start", "account_sid", "start_time"),
        Index("ix_calls_account_end", "account_sid", "end_time"),
        Index("ix_calls_parent", "parent_call_sid"),
        Index("ix_calls_sip_call_id", "sip_call_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sid: Mapped[str] = mapped_column(String(34), unique=True)
    account_sid: Mapped[str] = mapped_column(ForeignKey("accounts.sid", ondelete="CASCADE"))
    parent_call_sid: Mapped[str | None] = mapped_column(String(34), nullable=True)
    direction: Mapped[str] = mapped_column(String(16))
    from_: Mapped[str] = mapped_column("from_number", Text)
    to: Mapped[str] = mapped_column("to_number", Text)
    status: Mapped[str] = mapped_column(String(16))
    phone_number_sid: Mapped[str | None] = mapped_column(String(34), nullable=True)
    caller_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    forwarded_from: Mapped[str | None] = mapped_column(Text, nullable=True)
    api_version: Mapped[str] = mapped_column(String(10))
    start_time: Mapped[datetime] = mapped_column(UTCDateTime())
    answer_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    duration: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sip_response_code: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    sip_call_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    date_created: Mapped[datetime] = mapped_column(UTCDateTime())
    date_updated: Mapped[datetime] = mapped_column(UTCDateTime())


class Notification(Base):
    """An error (log 0) or warning (log 1) about a call, document or webhook (API-50, DOC-20).

    ``call_sid`` is indexed but not a foreign key: a Notification is kept even when the row
    of its call could not be written.  ``request_variables`` is form-encoded text;
    ``response_body`` holds at most the first 4 KiB of the response.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_account_created", "account_sid", "date_created", "id"),
        Index("ix_notifications_account_message_date", "account_sid", "message_date"),
        Index("ix_notifications_call", "call_sid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sid: Mapped[str] = mapped_column(String(34), unique=True)
    account_sid: Mapped[str] = mapped_column(ForeignKey("accounts.sid", ondelete="CASCADE"))
    call_sid: Mapped[str | None] = mapped_column(String(34), nullable=True)
    api_version: Mapped[str] = mapped_column(String(10))
    log: Mapped[int] = mapped_column(SmallInteger)
    error_code: Mapped[int] = mapped_column(Integer)
    more_info: Mapped[str] = mapped_column(Text)
    message_text: Mapped[str] = mapped_column(Text)
    message_date: Mapped[datetime] = mapped_column(UTCDateTime())
    request_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    request_method: Mapped[str | None] = mapped_column(String(8), nullable=True)
    request_variables: Mapped[str | None] = mapped_column(Text, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    date_created: Mapped[datetime] = mapped_column(UTCDateTime())
    date_updated: Mapped[datetime] = mapped_column(UTCDateTime())
