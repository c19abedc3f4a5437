"""grain sessions end with the login they were opened from

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 17:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("grain_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("login_session_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_grain_sessions_login_session_id"),
                              ["login_session_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("grain_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_grain_sessions_login_session_id"))
        batch_op.drop_column("login_session_id")
