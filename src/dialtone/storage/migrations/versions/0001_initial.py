"""Accounts, Clients, IncomingPhoneNumbers and registrations.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the first tables."""
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sid", sa.String(34), nullable=False, unique=True),
        sa.Column("friendly_name", sa.String(64), nullable=False),
        sa.Column("auth_token", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("date_created", sa.DateTime, nullable=False),
        sa.Column("date_updated", sa.DateTime, nullable=False),
    )
    op.create_table(
        "clients",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sid", sa.String(34), nullable=False, unique=True),
        sa.Column(
            "account_sid",
            sa.String(34),
            sa.ForeignKey("accounts.sid", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("login", sa.String(64), nullable=False),
        sa.Column("friendly_name", sa.String(64), nullable=False),
        sa.Column("ha1_md5", sa.String(32), nullable=False),
        sa.Column("ha1_sha256", sa.String(64), nullable=False),
        sa.Column("ha1_realm", sa.String(255), nullable=False),
        sa.Column("voice_url", sa.Text, nullable=True),
        sa.Column("voice_method", sa.String(8), nullable=False),
        sa.Column("voice_fallback_url", sa.Text, nullable=True),
        sa.Column("voice_fallback_method", sa.String(8), nullable=False),
        sa.Column("api_version", sa.String(10), nullable=False),
        sa.Column("date_created", sa.DateTime, nullable=False),
        sa.Column("date_updated", sa.DateTime, nullable=False),
        sa.UniqueConstraint("account_sid", "login", name="uq_clients_login"),
    )
    op.create_table(
        "incoming_phone_numbers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sid", sa.String(34), nullable=False, unique=True),
        sa.Column(
            "account_sid",
            sa.String(34),
            sa.ForeignKey("accounts.sid", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("phone_number", sa.String(21), nullable=False),
        sa.Column("friendly_name", sa.String(64), nullable=False),
        sa.Column("voice_url", sa.Text, nullable=True),
        sa.Column("voice_method", sa.String(8), nullable=False),
        sa.Column("voice_fallback_url", sa.Text, nullable=True),
        sa.Column("voice_fallback_method", sa.String(8), nullable=False),
        sa.Column("status_callback", sa.Text, nullable=True),
        sa.Column("status_callback_method", sa.String(8), nullable=False),
        sa.Column("api_version", sa.String(10), nullable=False),
        sa.Column("date_created", sa.DateTime, nullable=False),
        sa.Column("date_updated", sa.DateTime, nullable=False),
        sa.UniqueConstraint("account_sid", "phone_number", name="uq_numbers_phone_number"),
    )
    op.create_table(
        "registrations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "client_sid",
            sa.String(34),
            sa.ForeignKey("clients.sid", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("contact", sa.Text, nullable=False),
        sa.Column("call_id", sa.Text, nullable=False),
        sa.Column("cseq", sa.Integer, nullable=False),
        sa.Column("transport", sa.String(8), nullable=False),
        sa.Column("source_host", sa.String(64), nullable=False),
        sa.Column("source_port", sa.Integer, nullable=False),
        sa.Column("user_agent", sa.Text, nullable=True),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("client_sid", "contact", name="uq_registrations_contact"),
    )
    op.create_index("ix_registrations_expires", "registrations", ["expires_at"])


def downgrade() -> None:
    """Drop everything."""
    op.drop_index("ix_registrations_expires", "registrations")
    op.drop_table("registrations")
    op.drop_table("incoming_phone_numbers")
    op.drop_table("clients")
    op.drop_table("accounts")
