"""Calls (CDRs of legs) and Notifications.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-08

``calls.parent_call_sid`` and ``notifications.call_sid`` are indexed but not foreign keys:
the call layer's writes are ordered per call only, so a branch may be written before its
parent, and a Notification is kept even when its call's row could not be written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_CALL_INDEXES = (
    ("ix_calls_account_created", ["account_sid", "date_created", "id"]),
    ("ix_calls_account_to", ["account_sid", "to_number"]),
    ("ix_calls_account_from", ["account_sid", "from_number"]),
    ("ix_calls_account_status", ["account_sid", "status"]),
    ("ix_calls_account_start", ["account_sid", "start_time"]),
    ("ix_calls_account_end", ["account_sid", "end_time"]),
    ("ix_calls_parent", ["parent_call_sid"]),
    ("ix_calls_sip_call_id", ["sip_call_id"]),
)
_NOTIFICATION_INDEXES = (
    ("ix_notifications_account_created", ["account_sid", "date_created", "id"]),
    ("ix_notifications_account_message_date", ["account_sid", "message_date"]),
    ("ix_notifications_call", ["call_sid"]),
)


def _account_sid() -> sa.Column[str]:
    return sa.Column(
        "account_sid",
        sa.String(34),
        sa.ForeignKey("accounts.sid", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    """Create ``calls`` and ``notifications`` with the indexes of the list filters."""
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sid", sa.String(34), nullable=False, unique=True),
        _account_sid(),
        sa.Column("parent_call_sid", sa.String(34), nullable=True),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("from_number", sa.Text, nullable=False),
        sa.Column("to_number", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("phone_number_sid", sa.String(34), nullable=True),
        sa.Column("caller_name", sa.Text, nullable=True),
        sa.Column("forwarded_from", sa.Text, nullable=True),
        sa.Column("api_version", sa.String(10), nullable=False),
        sa.Column("start_time", sa.DateTime, nullable=False),
        sa.Column("answer_time", sa.DateTime, nullable=True),
        sa.Column("end_time", sa.DateTime, nullable=True),
        sa.Column("duration", sa.Integer, nullable=True),
        sa.Column("sip_response_code", sa.SmallInteger, nullable=True),
        sa.Column("sip_call_id", sa.Text, nullable=True),
        sa.Column("date_created", sa.DateTime, nullable=False),
        sa.Column("date_updated", sa.DateTime, nullable=False),
    )
    for name, columns in _CALL_INDEXES:
        op.create_index(name, "calls", columns)
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sid", sa.String(34), nullable=False, unique=True),
        _account_sid(),
        sa.Column("call_sid", sa.String(34), nullable=True),
        sa.Column("api_version", sa.String(10), nullable=False),
        sa.Column("log", sa.SmallInteger, nullable=False),
        sa.Column("error_code", sa.Integer, nullable=False),
        sa.Column("more_info", sa.Text, nullable=False),
        sa.Column("message_text", sa.Text, nullable=False),
        sa.Column("message_date", sa.DateTime, nullable=False),
        sa.Column("request_url", sa.Text, nullable=True),
        sa.Column("request_method", sa.String(8), nullable=True),
        sa.Column("request_variables", sa.Text, nullable=True),
        sa.Column("response_body", sa.Text, nullable=True),
        sa.Column("date_created", sa.DateTime, nullable=False),
        sa.Column("date_updated", sa.DateTime, nullable=False),
    )
    for name, columns in _NOTIFICATION_INDEXES:
        op.create_index(name, "notifications", columns)


def downgrade() -> None:
    """Drop both tables (and their indexes)."""
    for name, _columns in reversed(_NOTIFICATION_INDEXES):
        op.drop_index(name, "notifications")
    op.drop_table("notifications")
    for name, _columns in reversed(_CALL_INDEXES):
        op.drop_index(name, "calls")
    op.drop_table("calls")
