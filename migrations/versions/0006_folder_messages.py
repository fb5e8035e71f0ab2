"""Remember each folder's message count, so a rescan can skip a folder STATUS shows unchanged.

With UIDVALIDITY and the last UID already stored, MESSAGES tells whether mail left the folder
since the last scan (fewer messages than the stored count plus the UIDs handed out since).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("folders") as batch:
        batch.add_column(sa.Column("messages", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("folders") as batch:
        batch.drop_column("messages")
