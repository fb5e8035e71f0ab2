"""Remember where a message was after it leaves a folder; folder names and keys as TEXT.

A password mail deleted after staff logged in was still received: its location is marked
removed rather than deleted. Folder names and institution keys may exceed 500 characters.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("locations") as batch:
        batch.add_column(sa.Column("removed_at", sa.DateTime(), nullable=True))
        batch.alter_column("folder", type_=sa.Text(), existing_type=sa.String(500))
    with op.batch_alter_table("folders") as batch:
        batch.alter_column("name", type_=sa.Text(), existing_type=sa.String(500))
    with op.batch_alter_table("institutions") as batch:
        batch.alter_column("key", type_=sa.Text(), existing_type=sa.String(500))


def downgrade() -> None:
    with op.batch_alter_table("institutions") as batch:
        batch.alter_column("key", type_=sa.String(500), existing_type=sa.Text())
    with op.batch_alter_table("folders") as batch:
        batch.alter_column("name", type_=sa.String(500), existing_type=sa.Text())
    op.execute("DELETE FROM locations WHERE removed_at IS NOT NULL")
    with op.batch_alter_table("locations") as batch:
        batch.alter_column("folder", type_=sa.String(500), existing_type=sa.Text())
        batch.drop_column("removed_at")
