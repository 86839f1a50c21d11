"""source_state.multi_department_verified_at: when the multi-department listing last showed,
in one answer, records of two or more departments (the evidence that it answers for every
department it is asked about, see ``worker.sync.read.accounting``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

Self-contained (no imports from ``models``), so it keeps describing this revision. NULL for
every practice after the upgrade: the next multi-department read of each practice either shows
the evidence or reads the departments its answers left out one by one.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("source_state") as batch:
        batch.add_column(
            sa.Column("multi_department_verified_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("source_state") as batch:
        batch.drop_column("multi_department_verified_at")
