"""Changes to visits already in the past: check-in, check-out, cancellation.

These are the changes a date-window poll cannot see once the visit is older than its horizon
(a check-out or a cancellation entered weeks late); the changed-data feed carries them.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any

from sandbox import clock
from sandbox.appointments import CANCEL_REASONS, Appointment

# kind -> (statuses a visit may have to take the change, the status it gets, the feed event)
KINDS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "checkin": (("f",), "2", "CheckIn"),
    "checkout": (("2", "f"), "3", "CheckOut"),
    "cancel_past": (("f", "2"), "x", "CancelAppointment"),
}

Replace = Callable[..., Appointment]


def candidates(rows: dict[str, Appointment], statuses: tuple[str, ...], before: int) -> list[str]:
    """Ids of visits on days before ``before`` (an ordinal) with one of ``statuses``."""
    return sorted(i for i, a in rows.items() if a.day < before and a.status in statuses)


def apply(
    kind: str,
    rng: random.Random,
    row: Appointment,
    now: dt.datetime,
    user: str,
    replace: Replace,
) -> Appointment:
    """The visit after a change of ``kind`` made at ``now`` (Eastern wall time)."""
    _, status, _ = KINDS[kind]
    stamp = clock.fmt_datetime(now)
    record: dict[str, Any] = dict(
        row.record, appointmentstatus=status, lastmodified=stamp, lastmodifiedby=user
    )
    if kind == "checkin":
        record["checkindatetime"] = stamp
        record.setdefault("encounterid", str(rng.randrange(10000, 99999)))
    elif kind == "checkout":
        record.setdefault("checkindatetime", stamp)
        record["checkoutdatetime"] = stamp
    else:
        reason_id, reason, noshow = CANCEL_REASONS[rng.randrange(len(CANCEL_REASONS))]
        record.update(
            cancelledby=user,
            cancelleddatetime=stamp,
            cancelreasonid=reason_id,
            cancelreasonname=reason,
            cancelreasonnoshow=noshow,
            cancelreasonslotavailable=not noshow,
        )
    return replace(row, record, status=status, lastmodified=now)
