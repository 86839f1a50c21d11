"""The doctor against answers the sandbox never gives: scripted over real loopback HTTP."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from tests.athena.conftest import Reply, ScriptedServer, client_settings
from worker.doctor import Report, run_doctor
from worker.doctor.athena import scope_granted
from worker.doctor.redact import redact_url
from worker.doctor.render import api_table, practices_table, setup_table

PRACTICE = "195900"


def _run(server: ScriptedServer, tmp_path: Any, **overrides: Any) -> Report:
    settings = client_settings(
        server.url,
        database_url=f"sqlite:///{tmp_path / 'none.db'}",
        athena_practice_ids=(PRACTICE,),
        **overrides,
    )
    return run_doctor(settings)


def _row(report: Report, name: str, practice: str | None = PRACTICE) -> Any:
    return next(c for c in report.checks if c.name == name and c.practice_id in (practice, None))


def _render(report: Report) -> str:
    console = Console(file=io.StringIO(), width=250)
    for table in (setup_table(report), practices_table(report), api_table(report)):
        console.print(table)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def test_odd_listings_are_read_as_the_sync_would_read_them(
    scripted: ScriptedServer, tmp_path: Any
) -> None:
    scripted.api("/practiceinfo", lambda _: Reply(401, {"error": "Developer Inactive"}), "1")
    scripted.api("/ping", lambda _: Reply(body={"pong": True}))
    scripted.api("/departments", lambda _: Reply(body={"totalcount": 5}))  # no list at all
    scripted.api("/providers", lambda _: Reply(body={"providers": [{"providerid": 7}]}))
    scripted.api(
        "/appointmenttypes",
        lambda _: Reply(400, {"error": "Invalid value for [/providerid] [bold]x"}),
    )
    report = _run(scripted, tmp_path)

    listing = _row(report, "/practiceinfo", "1")
    assert listing.status == "warn"  # the sync never reads it: a warning, in its own words
    assert listing.verdict.text == "could not list the key's practices (401: Developer Inactive)"
    departments = _row(report, "/departments")
    assert (
        departments.status == "fail" and "without a 'departments' list" in departments.verdict.text
    )
    providers = _row(report, "/providers")
    assert (providers.status, providers.records) == ("ok", None)
    assert providers.verdict.text == "at least 1 providers (no totalcount sent)"
    types = _row(report, "/appointmenttypes")
    assert (types.status, types.http_status) == ("fail", 400)
    assert _row(report, "/appointments/booked").status == "warn"  # no department to ask for
    assert report.exit_code == 1
    assert "Invalid value for [/providerid] [bold]x" in _render(report)  # text, not markup


def test_an_empty_listing_without_its_collection_reads_as_empty_like_the_sync(
    scripted: ScriptedServer, tmp_path: Any
) -> None:
    scripted.api("/ping", lambda _: Reply(body={"Pong": "true"}))
    scripted.api("/departments", lambda _: Reply(body={"totalcount": 0}))
    scripted.api("/providers", lambda _: Reply(body=[{"providerid": 7}]))  # a list, no envelope
    report = _run(scripted, tmp_path)
    departments = _row(report, "/departments")
    assert (departments.status, departments.records) == ("warn", 0)
    assert departments.verdict.text == "no departments: the practice is empty"
    providers = _row(report, "/providers")
    assert providers.status == "fail"
    assert providers.verdict.text == (
        "answered 200 without a 'providers' list (a gateway answer): the sync retries it, "
        "then gives the unit up as retries_exhausted"
    )


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        (
            Reply(200, "<html>login</html>", "text/html"),
            "the token endpoint answered 200 without a token",
        ),
        (Reply(200, {"token_type": "Bearer"}), "the token endpoint answered 200 without a token"),
        (
            Reply(403, "<html>blocked</html>", "text/html"),
            "the token endpoint refused the request (403: no text)",
        ),
        (
            Reply(400, {"error": "unsupported_grant_type"}),
            "the token endpoint refused the request (400: unsupported_grant_type)",
        ),
        (
            Reply(401, {"error": "invalid_client"}),
            "the token endpoint refused the client id or secret (invalid_client)",
        ),
    ],
)
def test_token_endpoint_answers_are_told_apart(
    scripted: ScriptedServer, tmp_path: Any, reply: Reply, verdict: str
) -> None:
    scripted.route("POST", "/oauth2/v1/token", lambda _: reply)
    row = _row(_run(scripted, tmp_path), "token endpoint", None)
    assert (row.status, row.verdict.text) == ("fail", verdict)
    assert row.request_id  # even a 200 without a token names the request
    assert scripted.calls(f"/v1/{PRACTICE}/ping") == []


def test_a_practice_list_longer_than_one_page_leaves_membership_unknown(
    scripted: ScriptedServer, tmp_path: Any
) -> None:
    first_page = {"totalcount": 6001, "practiceinfo": [{"practiceid": 1}, {"practiceid": "2"}]}
    scripted.api("/practiceinfo", lambda _: Reply(body=first_page), "1")
    scripted.api("/ping", lambda _: Reply(body={"Pong": "true"}))
    report = _run(scripted, tmp_path)
    assert report.visible_practices == (("1", ""), ("2", ""))  # int ids read as text
    assert _row(report, "/practiceinfo", "1").records == 6001
    assert _row(report, "/ping").verdict.text == "pong"  # not "not in the key's list"


def test_several_scopes_are_compared_as_sets() -> None:
    asked = "athena/service/Athenanet.MDP.* system/Patient.read"
    assert scope_granted(asked, "system/Patient.read athena/service/Athenanet.MDP.*")
    assert not scope_granted(asked, "athena/service/Athenanet.MDP.*")
    assert scope_granted(asked, None)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:hunter2@db:5432/athena", "postgresql://app:***@db:5432/athena"),
        (
            "postgresql://app@db/athena?password=hunter2&sslmode=require",
            "postgresql://app@db/athena?password=***&sslmode=require",
        ),
        ("redis://:hunter2@localhost:6379/0", "redis://:***@localhost:6379/0"),
        ("redis://localhost/0?password=hunter2", "redis://localhost/0?password=***"),
        ("http://proxy:hunter2@127.0.0.1:8080", "http://proxy:***@127.0.0.1:8080"),
        ("postgresql://u:hunter2@host:abc/db", "(unparseable URL)"),
        ("u:hunter2@host/db", "(unparseable URL)"),
        ("sqlite:///athena_sync.db", "sqlite:///athena_sync.db"),
        (
            "https://api.preview.platform.athenahealth.com",
            "https://api.preview.platform.athenahealth.com",
        ),
    ],
)
def test_urls_are_shown_without_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown
