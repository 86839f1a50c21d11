"""Doctor checks against the API: mint a token, list the key's practices, probe each endpoint."""

from __future__ import annotations

from datetime import date

import requests

from tasks import all_resources
from worker.athena.broker import Minted, TokenBroker
from worker.athena.errors import AthenaError
from worker.athena.stats import ClientStats
from worker.athena.tokens import MemoryTokenCache
from worker.doctor.probes import Outcome, Prober
from worker.doctor.report import Check, Verdict
from worker.doctor.verdicts import api_failure, listed, token_failure
from worker.settings import Settings

PRACTICE_LIST_LIMIT = 5000
APPOINTMENTS = "appointments"


def mint(settings: Settings, session: requests.Session) -> tuple[Check, Minted | None]:
    """One request to the token endpoint; shows expiry and scope, never the token."""
    broker = TokenBroker(settings, cache=MemoryTokenCache(), session=session, stats=ClientStats())
    try:
        minted = broker.mint_once()
    except AthenaError as error:
        check = Check(
            "token",
            "token endpoint",
            token_failure(error),
            http_status=error.status,
            api_error=error.api_error,
            request_id=error.request_id,
        )
        return check, None
    granted = minted.scope or "(not echoed)"
    text = f"token minted, expires in {minted.expires_in / 60:.0f} min, scope {granted}"
    verdict = Verdict("ok", text)
    if minted.scope and settings.athena_scope not in minted.scope.split():
        verdict = Verdict(
            "warn",
            f"{text}: not the scope asked for ({settings.athena_scope})",
            "check ATHENA_SCOPE and the key's grants",
        )
    check = Check("token", "token endpoint", verdict, http_status=200, request_id=minted.request_id)
    return check, minted


def _failed(section: str, name: str, outcome: Outcome, verdict: Verdict, pid: str) -> Check:
    error = outcome.error
    return Check(
        section,
        name,
        verdict,
        practice_id=pid,
        http_status=outcome.http_status,
        api_error=error.api_error if error else None,
        request_id=outcome.request_id,
        elapsed_ms=outcome.elapsed_ms,
    )


def practice_list(prober: Prober) -> tuple[Check, list[tuple[str, str]]]:
    """``/v1/1/practiceinfo``: every practice this key can see."""
    outcome = prober.get("1", "/practiceinfo", {"limit": PRACTICE_LIST_LIMIT})
    if outcome.error is not None:
        verdict = api_failure(outcome.error, endpoint="/practiceinfo", practice_id="1")
        return _failed("practices", "/practiceinfo", outcome, verdict, "1"), []
    rows = outcome.body.get("practiceinfo") if isinstance(outcome.body, dict) else None
    visible = [
        (str(row.get("practiceid")), str(row.get("name") or ""))
        for row in (rows if isinstance(rows, list) else [])
        if isinstance(row, dict) and row.get("practiceid") is not None
    ]
    total = outcome.records("practiceinfo") or len(visible)
    verdict = (
        Verdict("ok", f"the key sees {total} practice(s)")
        if visible
        else Verdict("warn", "the key sees no practice", "ask athenahealth to enable practices")
    )
    check = Check(
        "practices",
        "/practiceinfo",
        verdict,
        practice_id="1",
        http_status=outcome.http_status,
        records=total,
        request_id=outcome.request_id,
        elapsed_ms=outcome.elapsed_ms,
    )
    return check, visible


def _probe(
    prober: Prober, pid: str, path: str, params: dict[str, str], collection: str, scope: str = ""
) -> tuple[Check, Outcome]:
    outcome = prober.get(pid, path, params)
    if outcome.error is not None:
        verdict = api_failure(outcome.error, endpoint=path, practice_id=pid)
        return _failed("practice", path, outcome, verdict, pid), outcome
    records = outcome.records(collection)
    verdict = (
        listed(path, records, scope=scope)
        if records is not None
        else Verdict("warn", f"answered 200 without a {collection!r} list", "send the report")
    )
    check = Check(
        "practice",
        path,
        verdict,
        practice_id=pid,
        http_status=outcome.http_status,
        records=records,
        request_id=outcome.request_id,
        elapsed_ms=outcome.elapsed_ms,
    )
    return check, outcome


def _ping(prober: Prober, pid: str, visible: set[str] | None) -> Check:
    outcome = prober.get(pid, "/ping", {})
    if outcome.error is not None:
        verdict = api_failure(outcome.error, endpoint="/ping", practice_id=pid)
        return _failed("practice", "/ping", outcome, verdict, pid)
    body = outcome.body if isinstance(outcome.body, dict) else {}
    pong = {k.lower(): str(v).lower() for k, v in body.items()}.get("pong") == "true"
    verdict = Verdict("ok", "pong") if pong else Verdict("warn", "answered without Pong: true")
    if visible is not None and pid not in visible:
        verdict = Verdict(
            "warn",
            "answers, but is not in the key's practice list",
            "check the practice id with athenahealth",
        )
    return Check(
        "practice",
        "/ping",
        verdict,
        practice_id=pid,
        http_status=outcome.http_status,
        request_id=outcome.request_id,
        elapsed_ms=outcome.elapsed_ms,
    )


def practice_checks(
    prober: Prober, pid: str, *, visible: set[str] | None, window: tuple[date, date]
) -> list[Check]:
    """``/ping``, then one small page of every endpoint the sync reads."""
    resources = all_resources()
    paths = [r.path for r in resources.values()]
    ping = _ping(prober, pid, visible)
    if ping.status == "fail":
        skipped = Verdict("skip", "not probed: /ping failed")
        return [ping, *(Check("practice", path, skipped, practice_id=pid) for path in paths)]
    checks = [ping]
    department: str | None = None
    for name, resource in resources.items():
        if name == APPOINTMENTS:
            checks.append(_appointments(prober, pid, department, window))
            continue
        check, outcome = _probe(
            prober, pid, resource.path, {**resource.params, "limit": "1"}, resource.collection
        )
        checks.append(check)
        first = outcome.first(resource.collection) if resource.collection == "departments" else None
        if first is not None and first.get("departmentid") is not None:
            department = str(first["departmentid"])
    return checks


def _appointments(
    prober: Prober, pid: str, department: str | None, window: tuple[date, date]
) -> Check:
    resource = all_resources()[APPOINTMENTS]
    if department is None:
        verdict = Verdict("skip", "not probed: no department to ask for appointments")
        return Check("practice", resource.path, verdict, practice_id=pid)
    start, end = window
    params = {
        **resource.params,
        "departmentid": department,
        "startdate": f"{start:%m/%d/%Y}",
        "enddate": f"{end:%m/%d/%Y}",
        "limit": "1",
    }
    scope = f"in department {department}, {start:%m/%d/%Y}-{end:%m/%d/%Y}"
    check, _ = _probe(prober, pid, resource.path, params, resource.collection, scope)
    return check
