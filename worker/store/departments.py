"""What the stored departments tell the engine: which to fan out over, and their zones."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from models import Department
from worker.parse import BadRecord, zone_from_offset, zone_info


def live_department_ids(session: Session, practice_id: str) -> list[str]:
    """Departments of the practice that are not marked deleted (hidden ones included)."""
    return list(
        session.scalars(
            sa.select(Department.department_id)
            .where(Department.practice_id == practice_id, Department.deleted_at.is_(None))
            .order_by(Department.department_id)
        )
    )


def department_zones(session: Session, practice_id: str) -> dict[str, str]:
    """Department id -> IANA zone name, from the departments already synced.

    A department whose ``timezonename`` is missing or unknown falls back to the US zone its
    standard offset and DST flag name (both must be present); otherwise it is left out, so its
    appointments are dead-lettered, not stored at a guessed instant.
    """
    rows = session.execute(
        sa.select(
            Department.department_id,
            Department.timezone_name,
            Department.timezone_offset,
            Department.does_not_observe_dst,
        ).where(Department.practice_id == practice_id)
    )
    zones = {
        str(dept): (name if _known_zone(name) else None)
        or (None if no_dst is None else zone_from_offset(offset, not no_dst))
        for dept, name, offset, no_dst in rows
    }
    return {dept: zone for dept, zone in zones.items() if zone}


def _known_zone(name: str | None) -> bool:
    if not name:
        return False
    try:
        zone_info(name)
    except BadRecord:
        return False
    return True
