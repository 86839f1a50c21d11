"""sync_runs.more_waiting: a changed-feed read that stopped at its page budget with changes still
waiting (the next run goes on), so it does not make the practice look fresh as of its start.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A server default fills existing rows at once (no table rewrite on Postgres 11+).
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(
            sa.Column("more_waiting", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("more_waiting")
