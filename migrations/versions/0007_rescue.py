"""Record each move of `gmis-mailscan rescue`: who, when, which message, from where to where.

A row is written before the first IMAP command that changes the mailbox (status "started")
and completed after it ("moved", or "copied" when the server cannot expunge by UID), so a
run cut off in the middle leaves a trace the next run completes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rescues",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "message_pk",
            sa.Integer(),
            sa.ForeignKey("messages.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("who", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("from_folder", sa.Text(), nullable=False),
        sa.Column("from_uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("from_uid", sa.BigInteger(), nullable=False),
        sa.Column("to_folder", sa.Text(), nullable=False),
        sa.Column("to_uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("to_uid", sa.BigInteger(), nullable=True),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
    )
    op.create_index("ix_rescues_account", "rescues", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_rescues_account", table_name="rescues")
    op.drop_table("rescues")
