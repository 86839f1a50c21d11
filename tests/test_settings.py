"""Settings are validated once, with errors that name the variable."""

from __future__ import annotations

import pytest

from worker.settings import DEFAULT_DATABASE_URL, SettingsError, settings_from_env


def test_defaults_need_no_configuration() -> None:
    settings = settings_from_env({})
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.redis_url is None
    assert settings.athena_base_url == "https://api.preview.platform.athenahealth.com"
    assert (
        settings.athena_token_url == "https://api.preview.platform.athenahealth.com/oauth2/v1/token"
    )
    assert settings.athena_scope == "athena/service/Athenanet.MDP.*"
    assert (settings.sync_runs_retention_days, settings.sync_clock_skew_seconds) == (30, 60)


def test_environment_picks_production_host_and_overrides_win() -> None:
    prod = settings_from_env({"ATHENA_ENVIRONMENT": "production"})
    assert prod.athena_base_url == "https://api.platform.athenahealth.com"
    custom = settings_from_env({"ATHENA_BASE_URL": "http://127.0.0.1:8765/"})
    assert custom.athena_token_url == "http://127.0.0.1:8765/oauth2/v1/token"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"ATHENA_ENVIRONMENT": "staging"}, "ATHENA_ENVIRONMENT"),
        ({"ATHENA_PAGE_LIMIT": "5001"}, "ATHENA_PAGE_LIMIT"),
        ({"ATHENA_PAGE_LIMIT": "many"}, "ATHENA_PAGE_LIMIT"),
        ({"ATHENA_PRACTICE_IDS": "195900,abc"}, "ATHENA_PRACTICE_IDS"),
        ({"ATHENA_BASE_URL": "ftp://x"}, "ATHENA_BASE_URL"),
        ({"SYNC_WINDOW_DAYS": "40"}, "SYNC_WINDOW_DAYS"),
        ({"SCHEDULE_RECONCILE_CRON": "* *"}, "SCHEDULE_RECONCILE_CRON"),
        ({"SYNC_RUNS_RETENTION_DAYS": "0"}, "SYNC_RUNS_RETENTION_DAYS"),
        ({"SYNC_RUNS_RETENTION_DAYS": "a month"}, "SYNC_RUNS_RETENTION_DAYS"),
        ({"SYNC_CLOCK_SKEW_SECONDS": "-1"}, "SYNC_CLOCK_SKEW_SECONDS"),
        ({"SYNC_FEED_RECOVERY_HOURS": "0"}, "SYNC_FEED_RECOVERY_HOURS"),
        ({"SYNC_FEED_RECOVERY_HOURS": "two"}, "SYNC_FEED_RECOVERY_HOURS"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as info:
        settings_from_env(env)
    assert info.value.variable == variable
    assert str(info.value).startswith(variable)


def test_feed_recovery_hours_default_to_2_and_stop_at_6() -> None:
    assert settings_from_env({}).sync_feed_recovery_hours == 2
    assert settings_from_env({"SYNC_FEED_RECOVERY_HOURS": "6"}).sync_feed_recovery_hours == 6
    with pytest.raises(SettingsError) as info:
        settings_from_env({"SYNC_FEED_RECOVERY_HOURS": "7"})
    assert str(info.value) == (
        "SYNC_FEED_RECOVERY_HOURS: must be at most 6 (athenahealth keeps processed changed-feed"
        " records a limited time), got 7"
    )


def test_practice_list_is_parsed_and_deduplicated() -> None:
    settings = settings_from_env({"ATHENA_PRACTICE_IDS": " 195900, 1128700 ,195900"})
    assert settings.athena_practice_ids == ("195900", "1128700")


def test_secret_is_not_in_repr() -> None:
    settings = settings_from_env({"ATHENA_CLIENT_SECRET": "s3cr3t-value"})
    assert "s3cr3t-value" not in repr(settings)


def test_missing_credentials_name_the_variable() -> None:
    with pytest.raises(SettingsError, match="ATHENA_CLIENT_ID"):
        settings_from_env({}).require_credentials()


def test_the_readme_configuration_table_lists_every_setting() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = (root / "worker" / "settings.py").read_text()
    variables = set(re.findall(r'env, "([A-Z_]+)"', code))
    assert len(variables) > 30, "the pattern still finds the settings"
    readme = (root / "README.md").read_text()
    table = readme[readme.index("## Configuration") :]
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.MULTILINE))
    assert variables - documented == set(), "settings missing from the README table"
    assert documented - variables == set(), "README documents settings the code does not read"
