"""Keep the decision-table row and its reasons with each institution's state.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("institutions") as batch:
        batch.add_column(sa.Column("row", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("reasons", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("institutions") as batch:
        batch.drop_column("reasons")
        batch.drop_column("row")
