"""sync_runs.deletions_deferred: a complete read that left deletion marking to a later one.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A server default fills existing rows at once (no table rewrite on Postgres 11+).
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(
            sa.Column("deletions_deferred", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("deletions_deferred")
