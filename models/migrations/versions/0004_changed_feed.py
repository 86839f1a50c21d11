"""The changed-data feed: source_state, and sync_runs.mode 'changed'.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

Self-contained (no imports from ``models``), so it keeps describing this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_MODES = ("full", "incremental", "reconcile")
NEW_MODES = (*OLD_MODES, "changed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _ts(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _modes(values: tuple[str, ...]) -> None:
    # Batch mode: SQLite cannot alter a CHECK in place, so it rebuilds the table. The name is
    # the one 0001 gave it (its name run through the naming convention once more).
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_constraint(op.f("ck_sync_runs_ck_sync_runs_mode"), type_="check")
        batch.create_check_constraint(op.f("ck_sync_runs_ck_sync_runs_mode"), _in("mode", values))


def upgrade() -> None:
    op.create_table(
        "source_state",
        sa.Column("practice_id", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("subscription", sa.Text(), nullable=True),
        sa.Column("subscription_detail", sa.Text(), nullable=True),
        _ts("subscription_checked_at"),
        _ts("subscribe_requested_at"),
        _ts("feed_started_at"),
        _ts("feed_pending_since"),
        sa.Column("feed_pending_run_id", sa.BigInteger(), nullable=True),
        sa.Column("server_offset_seconds", sa.Float(), nullable=True),
        _ts("multi_department_refused_at"),
        sa.Column("multi_department_refusal", sa.Text(), nullable=True),
        _ts("updated_at", nullable=False),
        sa.CheckConstraint(
            _in("subscription", ("active", "partial", "none")),
            name="ck_source_state_subscription",
        ),
        sa.PrimaryKeyConstraint("practice_id", "resource", name="pk_source_state"),
    )
    _modes(NEW_MODES)


def downgrade() -> None:
    op.execute("DELETE FROM sync_runs WHERE mode = 'changed'")
    _modes(OLD_MODES)
    op.drop_table("source_state")
