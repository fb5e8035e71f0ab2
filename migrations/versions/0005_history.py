"""History of assessed states and the notification watermark.

Every change of an institution's state, path, login ID or suspicious mail is a `history` row
with its scan run and time; `notify_state` remembers up to which row a summary mail was sent
(at-least-once, never twice). The institutions table keeps the warnings and suspicious mail
last seen, so the next assessment can tell what is new (NULL: not known before this revision).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "history",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("institution_key", sa.Text(), nullable=False),
        sa.Column("institution", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("scan_run_id", sa.Integer(), sa.ForeignKey("scan_runs.id"), nullable=True),
        sa.Column("cause", sa.String(16), nullable=False),
        sa.Column("from_state", sa.String(64), nullable=True),
        sa.Column("to_state", sa.String(64), nullable=True),
        sa.Column("from_path", sa.String(32), nullable=True),
        sa.Column("to_path", sa.String(32), nullable=True),
        sa.Column("login_id", sa.Text(), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("new_warnings", sa.JSON(), nullable=False),
    )
    op.create_index("ix_history_account_at", "history", ["account_id", "at"])
    op.create_table(
        "notify_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("last_history_id", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
    )
    with op.batch_alter_table("institutions") as batch:
        batch.add_column(sa.Column("warnings", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("suspicious", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("institutions") as batch:
        batch.drop_column("suspicious")
        batch.drop_column("warnings")
    op.drop_table("notify_state")
    op.drop_index("ix_history_account_at", table_name="history")
    op.drop_table("history")
