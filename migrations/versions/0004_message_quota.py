"""Remember a message-count quota (GETQUOTAROOT's MESSAGE resource) beside the STORAGE one.

A server may limit a mailbox by its number of messages alone; a mailbox full by count refuses
mail just as one full by size does.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, not batch mode: on SQLite a batch rebuilds the table, and dropping the
# old `accounts` would cascade to every row that references it.
def upgrade() -> None:
    op.add_column("accounts", sa.Column("quota_messages", sa.BigInteger(), nullable=True))
    op.add_column("accounts", sa.Column("quota_message_limit", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("accounts", "quota_message_limit")
    op.drop_column("accounts", "quota_messages")
