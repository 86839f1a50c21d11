"""`athena-sync doctor` against the sandbox over real HTTP, with Postgres and Redis for real."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from click.testing import CliRunner, Result

from sandbox import FaultConfig, SandboxConfig, SandboxServer
from sandbox.testing import serve_sandbox
from worker.athena.tokens import RedisTokenCache, cache_key
from worker.cli import cli
from worker.db import upgrade

GOOD, EMPTY, FORBIDDEN, UNKNOWN = "195900", "195901", "1128700", "424242"
SECRET = "sandbox-secret"
ENDPOINTS = [
    "/ping",
    "/departments",
    "/providers",
    "/appointmenttypes",
    "/appointments/booked",
    "/appointments/changed/subscription",
]


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    config = SandboxConfig(seed=4, appointments=300, days=20, empty_practices=(EMPTY,))
    with serve_sandbox(config) as started:
        started.subscribe(GOOD)  # a working setup has its changed-data subscription
        yield started


def _env(server: SandboxServer, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "ATHENA_BASE_URL": server.url,
        "ATHENA_CLIENT_ID": "sandbox-client",
        "ATHENA_CLIENT_SECRET": SECRET,
        "ATHENA_PRACTICE_IDS": GOOD,
        "ATHENA_RATE_LIMIT_RPS": "200",
        "ATHENA_RATE_LIMIT_BURST": "50",
        "LOG_LEVEL": "ERROR",
        **extra,
    }


def _sqlite(tmp_path: Path, *, migrated: bool = True) -> str:
    url = f"sqlite:///{tmp_path / 'doctor.db'}"
    if migrated:
        upgrade(url)
    return url


def _doctor(env: dict[str, str], *args: str) -> tuple[Result, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["doctor", "--json", *args], env=env)
    return result, json.loads(result.output)


def _rows(report: dict[str, Any], practice: str | None = None) -> dict[str, dict[str, Any]]:
    """The practice's probe rows by endpoint (or the non-practice rows by name)."""
    return {
        c["name"]: c
        for c in report["checks"]
        if (c["practice_id"] == practice and c["section"] == "practice")
        or (practice is None and c["section"] != "practice")
    }


def test_a_working_setup_passes_with_counts_from_the_api(
    server: SandboxServer, fresh_pg_url: str, redis_url: str, redis_prefix: str
) -> None:
    upgrade(fresh_pg_url)
    env = _env(server, fresh_pg_url, REDIS_URL=redis_url, REDIS_KEY_PREFIX=redis_prefix)
    result, report = _doctor(env)
    assert result.exit_code == 0, result.output
    assert report["ok"] is True
    assert {c["status"] for c in report["checks"]} <= {"ok"}
    truth = server.truth(GOOD)
    rows = _rows(report, GOOD)
    assert list(rows) == ENDPOINTS
    assert rows["/providers"]["records"] == len(truth["providers"])
    assert rows["/departments"]["records"] == len(truth["departments"])
    assert rows["/appointmenttypes"]["records"] == len(truth["appointmenttypes"])
    assert all(rows[path]["http_status"] == 200 for path in ENDPOINTS)
    assert all(rows[path]["request_id"] for path in ENDPOINTS)
    setup = _rows(report)
    assert "schema at" in setup["DATABASE_URL"]["verdict"]
    assert setup["token endpoint"]["verdict"].startswith("token minted, expires in 60 min")
    assert [p["practiceid"] for p in report["visible_practices"]] == [GOOD, EMPTY]
    # The minted token is shared with the workers (one mint saved), and never printed.
    key = cache_key(
        redis_prefix,
        f"{server.url}/oauth2/v1/token",
        "sandbox-client",
        "athena/service/Athenanet.MDP.*",
    )
    cached = RedisTokenCache(redis.Redis.from_url(redis_url), key).load()
    assert cached is not None
    assert cached.access_token not in result.output and SECRET not in result.output
    assert server.stats()["token_mints"] == 1


def test_each_broken_practice_gets_its_own_verdict(server: SandboxServer, tmp_path: Path) -> None:
    env = _env(server, _sqlite(tmp_path))
    args = ["--practice", f"{GOOD},{EMPTY}", "--practice", FORBIDDEN, "--practice", UNKNOWN]
    result, report = _doctor(env, *args)
    assert result.exit_code == 1
    assert report["ok"] is False

    forbidden = _rows(report, FORBIDDEN)["/ping"]
    assert (forbidden["status"], forbidden["http_status"]) == ("fail", 401)
    assert forbidden["api_error"] == "Incorrect permissions."
    assert forbidden["verdict"] == "practice not enabled for this key"
    assert "ask athenahealth to grant this key access to practice 1128700" in forbidden["next_step"]

    unknown = _rows(report, UNKNOWN)["/ping"]
    assert (unknown["status"], unknown["http_status"]) == ("fail", 404)
    assert unknown["api_error"] == "Invalid practice."
    assert unknown["verdict"] == "practice does not exist"
    for practice in (FORBIDDEN, UNKNOWN):  # nothing more is asked of a practice that failed
        rest = [row for name, row in _rows(report, practice).items() if name != "/ping"]
        assert {(row["status"], row["http_status"]) for row in rest} == {("skip", None)}

    empty = _rows(report, EMPTY)
    assert empty["/ping"]["status"] == "ok"
    assert (empty["/departments"]["status"], empty["/departments"]["records"]) == ("warn", 0)
    assert empty["/departments"]["verdict"] == "no departments: the practice is empty"
    assert empty["/appointments/booked"]["status"] == "warn"  # not verified: no department
    assert empty["/appointments/booked"]["verdict"].startswith("not verified")

    assert {row["status"] for row in _rows(report, GOOD).values()} == {"ok"}
    assert server.stats()["requests"]["/v1/{practiceid}/departments"] == {"200": 2}


def test_an_empty_practice_alone_is_a_warning_not_a_failure(
    server: SandboxServer, tmp_path: Path
) -> None:
    result, report = _doctor(_env(server, _sqlite(tmp_path)), "--practice", EMPTY)
    assert result.exit_code == 0, result.output
    assert [c["name"] for c in report["checks"] if c["status"] == "warn"] == [
        "/departments",
        "/providers",
        "/appointmenttypes",
        "/appointments/booked",
        "/appointments/changed/subscription",  # none: the sync would poll meanwhile
    ]


def test_bad_credentials_are_named_and_nothing_else_is_asked(
    server: SandboxServer, tmp_path: Path
) -> None:
    env = _env(server, _sqlite(tmp_path), ATHENA_CLIENT_SECRET="not-the-secret")
    result, report = _doctor(env)
    assert result.exit_code == 1
    token = _rows(report)["token endpoint"]
    assert (token["status"], token["http_status"], token["api_error"]) == (
        "fail",
        401,
        "invalid_client",
    )
    assert "refused the client id or secret" in token["verdict"]
    assert "ATHENA_CLIENT_SECRET" in token["next_step"]
    assert _rows(report, GOOD)["/ping"]["verdict"] == "not probed: no token"
    assert list(server.stats()["requests"]) == ["/oauth2/v1/token"]  # no API call without one
    assert "not-the-secret" not in result.output


def test_a_rate_limited_token_endpoint_says_wait_a_minute(
    server: SandboxServer, tmp_path: Path
) -> None:
    for _ in range(5):  # the preview budget: 5 new tokens a minute
        minted = requests.post(
            f"{server.url}/oauth2/v1/token",
            data={"grant_type": "client_credentials"},
            auth=("sandbox-client", SECRET),
            timeout=5,
        )
        assert minted.status_code == 200
    result, report = _doctor(_env(server, _sqlite(tmp_path)))
    assert result.exit_code == 1
    token = _rows(report)["token endpoint"]
    assert (token["status"], token["http_status"]) == ("fail", 429)
    assert token["verdict"].startswith("token endpoint rate limited (Retry-After")
    assert "5 new tokens a minute in preview" in token["verdict"]
    assert token["next_step"].startswith("wait a minute")


def test_a_rate_limited_token_endpoint_still_probes_with_the_workers_shared_token(
    server: SandboxServer, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    env = _env(server, _sqlite(tmp_path), REDIS_URL=redis_url, REDIS_KEY_PREFIX=redis_prefix)
    assert _doctor(env)[0].exit_code == 0  # mints once and shares the token through Redis
    for _ in range(4):
        requests.post(
            f"{server.url}/oauth2/v1/token",
            data={"grant_type": "client_credentials"},
            auth=("sandbox-client", SECRET),
            timeout=5,
        )
    _, report = _doctor(env)
    token = _rows(report)["token endpoint"]
    assert (token["status"], token["http_status"]) == ("fail", 429)
    assert "probing with the workers' shared token instead" in token["next_step"]
    assert {row["status"] for row in _rows(report, GOOD).values()} == {"ok"}
    assert "a shared token is cached" in _rows(report)["REDIS_URL"]["verdict"]


def test_services_database_schema_and_redis_are_checked(
    server: SandboxServer, tmp_path: Path
) -> None:
    env = _env(server, _sqlite(tmp_path, migrated=False), REDIS_URL="redis://127.0.0.1:1/0")
    result, report = _doctor(env)
    assert result.exit_code == 1
    setup = _rows(report)
    assert setup["DATABASE_URL"]["status"] == "fail"
    assert setup["DATABASE_URL"]["verdict"].startswith("no SQLite file at")
    assert "athena-sync db upgrade" in setup["DATABASE_URL"]["next_step"]
    assert setup["REDIS_URL"]["status"] == "fail"
    assert setup["REDIS_URL"]["verdict"].startswith("Redis refused (ConnectionError")
    assert {row["status"] for row in _rows(report, GOOD).values()} == {"ok"}  # API still probed


def test_missing_credentials_are_reported_not_crashed_on(tmp_path: Path) -> None:
    env = {"DATABASE_URL": _sqlite(tmp_path), "LOG_LEVEL": "ERROR", "ATHENA_PRACTICE_IDS": GOOD}
    result, report = _doctor(env)
    assert result.exit_code == 1
    setup = _rows(report)
    assert setup["ATHENA_CLIENT_ID"]["status"] == "fail"
    assert setup["ATHENA_CLIENT_SECRET"]["status"] == "fail"
    assert setup["token endpoint"]["status"] == "skip"
    assert "ATHENA_CLIENT_ID" in setup["token endpoint"]["verdict"]


def test_the_support_report_has_ids_statuses_and_request_ids_but_no_secrets(
    server: SandboxServer, tmp_path: Path
) -> None:
    env = _env(server, "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/x")
    path = tmp_path / "support.md"
    result = CliRunner().invoke(
        cli,
        ["doctor", "--practice", GOOD, "--practice", FORBIDDEN, "--support-report", str(path)],
        env=env,
    )
    assert result.exit_code == 1
    assert f"support report written to {path}" in result.output
    assert "practice not enabled for this key" in result.output  # the table on the terminal
    text = path.read_text()
    assert text.startswith("# athena-sync doctor report")
    forbidden = next(line for line in text.splitlines() if line.startswith(f"| {FORBIDDEN} |"))
    assert "| GET /ping | 401 | Incorrect permissions. |" in forbidden
    request_id = forbidden.rstrip(" |").rsplit("| ", 1)[1]
    assert len(request_id) == 36  # the X-Request-Id sent, for athenahealth support
    assert f"| {GOOD} | GET /departments | 200 |" in text
    assert "| ATHENA_CLIENT_SECRET | (hidden) | ok |" in text
    assert "sand…ient" in text and "sandbox-client" not in text
    for secret in (SECRET, "hunter2"):
        assert secret not in text and secret not in result.output
    assert "postgres:***@127.0.0.1:1" in text


def test_a_gateway_error_page_is_shown_as_such_without_its_body(tmp_path: Path) -> None:
    faults = FaultConfig(error_rate=1.0, html_502_share=1.0)
    with serve_sandbox(SandboxConfig(seed=4, appointments=10, days=5, faults=faults)) as server:
        result, report = _doctor(_env(server, _sqlite(tmp_path)))
        assert server.stats()["requests"]["/v1/{practiceid}/ping"] == {"502": 1}  # not retried
    assert result.exit_code == 1
    ping = _rows(report, GOOD)["/ping"]
    assert (ping["status"], ping["http_status"], ping["api_error"]) == ("fail", 502, None)
    assert ping["verdict"] == "server error or gateway page (502)"
    assert "support report" in ping["next_step"]
    assert "<html" not in result.output.lower()


def test_malformed_urls_are_fail_rows_and_passwords_never_shown(
    server: SandboxServer, tmp_path: Path
) -> None:
    env = _env(
        server,
        "postgresql://app:hunter2@127.0.0.1:abc/db",
        REDIS_URL="localhost:6379",
        ATHENA_BASE_URL=server.url.replace("http://", "http://proxy:proxypw@"),
    )
    result, report = _doctor(env, "--support-report", str(tmp_path / "s.md"))
    assert result.exit_code == 1
    setup = _rows(report)
    assert setup["DATABASE_URL"]["status"] == "fail"
    assert setup["DATABASE_URL"]["value"] == "(unparseable URL)"
    assert setup["REDIS_URL"]["status"] == "fail"
    assert setup["REDIS_URL"]["verdict"].startswith("unusable URL")
    assert setup["ATHENA_BASE_URL"]["value"] == server.url.replace("http://", "http://proxy:***@")
    assert report["base_url"] == setup["ATHENA_BASE_URL"]["value"]
    for secret in ("hunter2", "proxypw"):
        assert secret not in result.output and secret not in (tmp_path / "s.md").read_text()


def test_a_query_string_password_is_hidden(server: SandboxServer, fresh_pg_url: str) -> None:
    upgrade(fresh_pg_url)
    url = f"{fresh_pg_url}?password=dbsecret"
    result, report = _doctor(_env(server, url))
    assert result.exit_code == 0, result.output
    assert "password=***" in _rows(report)["DATABASE_URL"]["value"]
    assert "dbsecret" not in result.output


def test_a_redis_that_refuses_writes_is_a_failed_row_not_a_crash(
    server: SandboxServer, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    user = f"doctor-ro-{redis_prefix.rsplit(':', 1)[-1]}"
    client.acl_setuser(
        user,
        enabled=True,
        passwords=["+ro-pass"],
        keys=["*"],
        commands=["+@read", "+ping", "+auth", "+hello", "+client"],
    )
    try:
        host = redis_url.split("://", 1)[1]
        env = _env(
            server,
            _sqlite(tmp_path),
            REDIS_URL=f"redis://{user}:ro-pass@{host}",
            REDIS_KEY_PREFIX=redis_prefix,
        )
        result, report = _doctor(env)
    finally:
        client.acl_deluser(user)
    assert result.exit_code == 1
    row = _rows(report)["REDIS_URL"]
    assert row["status"] == "fail" and row["verdict"].startswith("Redis refused (NoPermission")
    assert "ro-pass" not in result.output
    assert {r["status"] for r in _rows(report, GOOD).values()} == {"ok"}  # local budget instead


def test_with_json_an_unreadable_setting_is_json_too(tmp_path: Path) -> None:
    env = {"DATABASE_URL": _sqlite(tmp_path), "ATHENA_ENVIRONMENT": "prod", "LOG_LEVEL": "ERROR"}
    result, report = _doctor(env)
    assert result.exit_code == 2
    assert report["configuration_error"]["variable"] == "ATHENA_ENVIRONMENT"


def test_a_report_into_a_missing_directory_is_refused_before_any_request(
    server: SandboxServer, tmp_path: Path
) -> None:
    missing = tmp_path / "nope" / "s.md"
    result = CliRunner().invoke(
        cli, ["doctor", "--support-report", str(missing)], env=_env(server, _sqlite(tmp_path))
    )
    assert result.exit_code == 2 and "does not exist" in result.output
    assert server.stats()["requests"] == {}


def test_a_403_on_one_endpoint_is_told_apart_from_a_403_throttle(tmp_path: Path) -> None:
    config = SandboxConfig(seed=4, appointments=50, forbidden_endpoints=(f"{GOOD}:/providers",))
    with serve_sandbox(config) as started:
        started.subscribe(GOOD)
        env = _env(started, _sqlite(tmp_path))
        _, report = _doctor(env)
        started.set_faults(legacy_throttle_rate=1.0)
        _, throttled = _doctor(env)
    rows = _rows(report, GOOD)
    assert (rows["/providers"]["status"], rows["/providers"]["http_status"]) == ("fail", 403)
    assert rows["/providers"]["verdict"] == "this key may not call /providers for this practice"
    assert "enable /providers for this key and practice" in rows["/providers"]["next_step"]
    assert {rows[p]["status"] for p in ENDPOINTS if p != "/providers"} == {"ok"}
    ping = _rows(throttled, GOOD)["/ping"]
    assert (ping["status"], ping["http_status"]) == ("fail", 403)
    assert ping["verdict"] == "API rate limited (the legacy gateway's 403 Developer Over Qps)"


def test_each_practice_shows_its_subscription_with_a_next_step(
    server: SandboxServer, tmp_path: Path
) -> None:
    path = "/appointments/changed/subscription"
    env = _env(server, _sqlite(tmp_path))
    result, report = _doctor(env, "--practice", EMPTY)
    none = _rows(report, EMPTY)[path]
    assert result.exit_code == 0, "a missing subscription warns: the sync polls meanwhile"
    assert none["status"] == "warn" and none["verdict"].startswith("none (status INACTIVE")
    assert f"athena-sync subscriptions create --practice {EMPTY}" in none["next_step"]
    assert "polled with /appointments/booked" in none["next_step"]
    auto = _rows(_doctor({**env, "ATHENA_AUTO_SUBSCRIBE": "true"}, "--practice", EMPTY)[1], EMPTY)
    assert "ATHENA_AUTO_SUBSCRIBE=true" in auto[path]["next_step"]

    server.subscribe(EMPTY, "CheckIn")
    partial = _rows(_doctor(env, "--practice", EMPTY)[1], EMPTY)[path]
    assert partial["status"] == "warn" and partial["verdict"].startswith("partial")
    assert "subscribe every event" in partial["next_step"]

    server.subscribe(EMPTY)
    active = _rows(_doctor(env, "--practice", EMPTY)[1], EMPTY)[path]
    assert active["status"] == "ok" and active["verdict"].startswith("ACTIVE")
    assert active["next_step"] is None
