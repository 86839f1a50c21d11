"""Doctor checks against the API: mint a token, list the key's practices, probe each endpoint."""

from __future__ import annotations

from datetime import date

import requests

from worker.athena.broker import Minted, TokenBroker
from worker.athena.errors import AthenaError
from worker.athena.stats import ClientStats
from worker.athena.tokens import MemoryTokenCache
from worker.doctor.probes import Listing, Outcome, Prober
from worker.doctor.report import Check, Status, Verdict
from worker.doctor.verdicts import (
    NOUNS,
    SUPPORT,
    api_failure,
    listed,
    practice_list_failure,
    token_failure,
)
from worker.resources import DEPARTMENTS, ReadStrategy, Resource, all_resources
from worker.settings import Settings
from worker.sync import subscriptions

PRACTICE_LIST_LIMIT = 5000


def scope_granted(asked: str, granted: str | None) -> bool:
    """Every space-separated scope asked for is in the granted list (or none was echoed)."""
    return granted is None or set(asked.split()) <= set(granted.split())


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
    if not scope_granted(settings.athena_scope, minted.scope):
        verdict = Verdict(
            "warn",
            f"{text}: not the scope asked for ({settings.athena_scope})",
            "check ATHENA_SCOPE and the key's grants",
        )
    check = Check("token", "token endpoint", verdict, http_status=200, request_id=minted.request_id)
    return check, minted


def _row(
    section: str,
    name: str,
    outcome: Outcome,
    verdict: Verdict,
    pid: str,
    records: int | None = None,
) -> Check:
    error = outcome.error
    return Check(
        section,
        name,
        verdict,
        practice_id=pid,
        http_status=outcome.http_status,
        api_error=error.api_error if error else None,
        records=records,
        request_id=outcome.request_id,
        elapsed_ms=outcome.elapsed_ms,
    )


def practice_list(prober: Prober) -> tuple[Check, list[tuple[str, str]], bool]:
    """``/v1/1/practiceinfo``: the practices this key can see, and whether the list is whole.

    The sync never reads this endpoint, so its failure is a warning, not a failure.
    """
    outcome = prober.get("1", "/practiceinfo", {"limit": PRACTICE_LIST_LIMIT})
    if outcome.error is not None:
        return (
            _row("practices", "/practiceinfo", outcome, practice_list_failure(outcome.error), "1"),
            [],
            False,
        )
    listing = outcome.listing("practiceinfo")
    if listing.rows is None:
        verdict = Verdict("warn", "answered 200 without a practice list", "send the report")
        return _row("practices", "/practiceinfo", outcome, verdict, "1"), [], False
    visible = [
        (str(row.get("practiceid")), str(row.get("name") or ""))
        for row in listing.rows
        if isinstance(row, dict) and row.get("practiceid") is not None
    ]
    whole = listing.totalcount is None or listing.totalcount <= len(listing.rows)
    total = listing.totalcount if listing.totalcount is not None else len(visible)
    if not visible:
        verdict = Verdict(
            "warn", "the key sees no practice", "ask athenahealth to enable practices"
        )
    elif whole:
        verdict = Verdict("ok", f"the key sees {total} practice(s)")
    else:
        verdict = Verdict("ok", f"the key sees {total} practice(s); the first {len(visible)} read")
    return _row("practices", "/practiceinfo", outcome, verdict, "1", total), visible, whole


def _listing_verdict(path: str, listing: Listing, collection: str, scope: str) -> Verdict:
    if listing.rows is None:
        return Verdict(
            "fail",
            f"answered 200 without a {collection!r} list (a gateway answer): the sync retries "
            "it, then gives the unit up as retries_exhausted",
            f"retry later; {SUPPORT}",
        )
    if listing.totalcount is None and listing.rows:
        noun = NOUNS.get(path, "records")
        return Verdict("ok", f"at least {len(listing.rows)} {noun} (no totalcount sent)")
    return listed(path, listing.count or 0, scope=scope)


def _probe(
    prober: Prober, pid: str, path: str, params: dict[str, str], collection: str, scope: str = ""
) -> tuple[Check, Outcome]:
    outcome = prober.get(pid, path, params)
    if outcome.error is not None:
        verdict = api_failure(outcome.error, endpoint=path, practice_id=pid)
        return _row("practice", path, outcome, verdict, pid), outcome
    listing = outcome.listing(collection)
    verdict = _listing_verdict(path, listing, collection, scope)
    exact = listing.totalcount is not None or not listing.rows
    return _row("practice", path, outcome, verdict, pid, listing.count if exact else None), outcome


def _ping(prober: Prober, pid: str, visible: set[str] | None) -> Check:
    outcome = prober.get(pid, "/ping", {})
    if outcome.error is not None:
        verdict = api_failure(outcome.error, endpoint="/ping", practice_id=pid)
        return _row("practice", "/ping", outcome, verdict, pid)
    body = outcome.body if isinstance(outcome.body, dict) else {}
    pong = {str(k).lower(): str(v).lower() for k, v in body.items()}.get("pong") == "true"
    verdict = Verdict("ok", "pong") if pong else Verdict("warn", "answered without Pong: true")
    if pong and visible is not None and pid not in visible:
        verdict = Verdict(
            "warn",
            "answers, but is not in the key's practice list",
            "check the practice id with athenahealth",
        )
    return _row("practice", "/ping", outcome, verdict, pid)


def practice_checks(
    prober: Prober,
    pid: str,
    *,
    visible: set[str] | None,
    window: tuple[date, date],
    source: str = "changed",
    auto: bool = False,
) -> list[Check]:
    """``/ping``, then one small page of every endpoint the sync reads, then each changed-data
    subscription (how it stands, and what to do)."""
    resources = all_resources()
    paths = [r.path for r in resources.values()]
    paths += [r.feed.subscription_path for r in resources.values() if r.feed is not None]
    ping = _ping(prober, pid, visible)
    if ping.status == "fail":
        skipped = Verdict("skip", "not probed: /ping failed")
        return [ping, *(Check("practice", path, skipped, practice_id=pid) for path in paths)]
    checks = [ping]
    department: str | None = None
    for resource in resources.values():
        if resource.read == ReadStrategy.BY_DEPARTMENT:
            checks.append(_by_department(prober, resource, pid, department, window))
            continue
        check, outcome = _probe(
            prober, pid, resource.path, {**resource.params, "limit": "1"}, resource.collection
        )
        checks.append(check)
        if resource is DEPARTMENTS:
            department = _department_id(outcome)
    for resource in resources.values():
        if resource.feed is not None:
            checks.append(_subscription(prober, resource.feed.subscription_path, pid, source, auto))
    return checks


def _subscription(prober: Prober, path: str, pid: str, source: str, auto: bool) -> Check:
    """``GET`` the subscription: ACTIVE, partial or none with the next step (none only warns:
    the sync polls the listing meanwhile); a failure that is not a refusal is the API's."""
    outcome = prober.get(pid, path, {})
    error = outcome.error
    if error is not None and not subscriptions.unusable(error):
        verdict = api_failure(error, endpoint=path, practice_id=pid)
        return _row("practice", path, outcome, verdict, pid)
    found = subscriptions.refusal(error) if error else subscriptions.read_status(outcome.body)
    said = subscriptions.advice(found, pid, source=source, auto=auto)
    status: Status = "ok" if said.level == "ok" else "warn"
    return _row("practice", path, outcome, Verdict(status, said.text, said.next_step), pid)


def _department_id(outcome: Outcome) -> str | None:
    rows = outcome.listing("departments").rows or []
    first = rows[0] if rows and isinstance(rows[0], dict) else {}
    ident = first.get("departmentid")
    return str(ident) if isinstance(ident, int | str) and str(ident).strip() else None


def _by_department(
    prober: Prober, resource: Resource, pid: str, department: str | None, window: tuple[date, date]
) -> Check:
    if department is None:
        verdict = Verdict(
            "warn",
            "not verified: no department to ask for appointments",
            "the appointments endpoint is untested until the practice has a department",
        )
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
