"""Admin routes under ``/_sandbox/`` (no auth): steer the sandbox and read its ground truth.

POST /_sandbox/mutate          {"practiceid", "cancel", "modify", "delete", "add", "checkin",
                               "checkout", "cancel_past", "past_days", "seed"?}
GET  /_sandbox/stats           request counts by path template/status, per practice, mints; each
                               practice's changed-data queue (unprocessed, processed)
POST /_sandbox/stats/reset
GET  /_sandbox/truth?practiceid=
GET  /_sandbox/faults          the faults in force
POST /_sandbox/faults          a FaultConfig as JSON (replaces the faults in force)
POST /_sandbox/tokens/expire   expire every issued token now
GET  /_sandbox/clock           the sandbox's time (``Date`` headers, ``lastmodified`` stamps)
POST /_sandbox/clock           {"advance_seconds": N}: move that clock forward
GET  /_sandbox/config          what is served
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from sandbox.api import Sandbox
from sandbox.clock import fmt_date, fmt_datetime
from sandbox.config import ConfigError, FaultConfig
from sandbox.response import Response, admin_json
from sandbox.store import Mutation

COUNTS = ("cancel", "modify", "delete", "add", "checkin", "checkout", "cancel_past", "past_days")


class AdminError(ValueError):
    """A bad admin request; answered with 400 (or 404 for an unknown practice)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def mutation_from_json(payload: Any) -> Mutation:
    """Validate a mutate request body."""
    if not isinstance(payload, dict):
        raise AdminError("mutate expects a JSON object")
    unknown = sorted(set(payload) - {*COUNTS, "seed", "practiceid"})
    if unknown:
        raise AdminError(f"unknown mutate fields: {', '.join(unknown)}")
    values: dict[str, int] = {}
    for name in (*COUNTS, "seed"):
        raw = payload.get(name)
        if raw is None:  # absent: the Mutation's default
            continue
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
            raise AdminError(f"{name} must be a whole number, 0 or more")
        values[name] = raw
    return Mutation(**values)


def _practice(sandbox: Sandbox, raw: Any) -> str:
    practice_id = str(raw) if raw is not None else sandbox.config.practices[0]
    if practice_id not in sandbox.stores:
        raise AdminError(f"practice {practice_id} is not served", 404)
    return practice_id


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise AdminError("body must be JSON") from None


def _config(sandbox: Sandbox) -> dict[str, Any]:
    c = sandbox.config
    return {
        "practices": list(c.practices),
        "forbidden_practices": list(c.forbidden_practices),
        "empty_practices": list(c.empty_practices),
        "forbidden_endpoints": list(c.forbidden_endpoints),
        "unserved_endpoints": list(c.unserved_endpoints),
        "subscription_activation_seconds": c.subscription_activation_seconds,
        "processed_retention_seconds": c.processed_retention_seconds,
        "feed_appointment_notes": c.feed_appointment_notes,
        "seed": c.seed,
        "anchor_date": fmt_date(c.anchor_date),
        "first_day": fmt_date(c.first_day),
        "last_day": fmt_date(c.last_day),
        "client_id": c.client_id,
        "faults": sandbox.faults.faults.to_json(),
    }


def _advance_seconds(payload: Any) -> float:
    """Validate a clock request body: ``{"advance_seconds": N}``, N a number, 0 or more."""
    if not isinstance(payload, dict) or set(payload) != {"advance_seconds"}:
        raise AdminError('clock expects {"advance_seconds": N}')
    seconds = payload["advance_seconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
        raise AdminError("advance_seconds must be a number, 0 or more (the clock never goes back)")
    return float(seconds)


def _clock(sandbox: Sandbox) -> dict[str, Any]:
    return {
        "now": sandbox.clock.now().isoformat(),
        "eastern": fmt_datetime(sandbox.clock.eastern()),
        "ahead_seconds": sandbox.clock.ahead_seconds,
    }


def _dispatch(sandbox: Sandbox, method: str, route: str, query: str, body: bytes) -> Any:
    args = dict(parse_qsl(query))
    if (method, route) == ("POST", "mutate"):
        payload = _json_body(body)
        practice_id = _practice(
            sandbox, payload.get("practiceid") if isinstance(payload, dict) else None
        )
        return sandbox.mutate(practice_id, mutation_from_json(payload))
    if (method, route) == ("GET", "stats"):
        return sandbox.snapshot()
    if (method, route) == ("POST", "stats/reset"):
        sandbox.stats.reset()
        return {"reset": True}
    if (method, route) == ("GET", "truth"):
        return sandbox.store(_practice(sandbox, args.get("practiceid"))).truth()
    if (method, route) == ("GET", "faults"):
        return sandbox.faults.faults.to_json()
    if (method, route) == ("POST", "faults"):
        try:
            faults = FaultConfig.from_json(_json_body(body))
        except ConfigError as exc:
            raise AdminError(str(exc)) from None
        sandbox.set_faults(faults)
        return faults.to_json()
    if (method, route) == ("POST", "tokens/expire"):
        return {"expired": sandbox.tokens.expire_all()}
    if (method, route) == ("GET", "config"):
        return _config(sandbox)
    if route == "clock" and method in ("GET", "POST"):
        if method == "POST":
            sandbox.clock.advance(_advance_seconds(_json_body(body)))
        return _clock(sandbox)
    raise AdminError(f"no admin route {method} /_sandbox/{route}", 404)


def handle_admin(sandbox: Sandbox, method: str, path: str, query: str, body: bytes) -> Response:
    """Answer a ``/_sandbox/...`` request with plain JSON."""
    route = path.removeprefix("/_sandbox/").strip("/")
    try:
        return admin_json(200, _dispatch(sandbox, method, route, query, body))
    except AdminError as exc:
        return admin_json(exc.status, {"error": str(exc)})
