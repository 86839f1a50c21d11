"""The `athena-sync` verbs as a user runs them: exit codes and what they print."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from sandbox import SandboxConfig
from sandbox.testing import serve_sandbox
from worker.cli import cli


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "LOG_LEVEL": "ERROR", **extra}


def test_a_missing_setting_names_the_variable(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["sync", "all"], env=_env(tmp_path))
    assert result.exit_code == 2
    assert "configuration error: ATHENA_PRACTICE_IDS" in result.output


def test_a_bad_setting_names_the_variable(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["runs"], env=_env(tmp_path, ATHENA_PAGE_LIMIT="lots"))
    assert result.exit_code == 2
    assert "ATHENA_PAGE_LIMIT: must be a whole number" in result.output


def test_an_unmigrated_database_is_refused_until_db_upgrade(tmp_path: Path) -> None:
    runner = CliRunner()
    refused = runner.invoke(cli, ["runs"], env=_env(tmp_path))
    assert refused.exit_code == 1 and "athena-sync db upgrade" in refused.output
    upgraded = runner.invoke(cli, ["db", "upgrade"], env=_env(tmp_path))
    assert upgraded.exit_code == 0 and "database at revision" in upgraded.output
    assert runner.invoke(cli, ["runs"], env=_env(tmp_path)).exit_code == 0


def test_sync_prints_a_summary_and_fails_only_when_a_unit_failed(tmp_path: Path) -> None:
    runner = CliRunner()
    config = SandboxConfig(seed=2, appointments=200, days=20)
    with serve_sandbox(config) as server:
        env = _env(
            tmp_path,
            ATHENA_BASE_URL=server.url,
            ATHENA_CLIENT_ID="sandbox-client",
            ATHENA_CLIENT_SECRET="sandbox-secret",
            ATHENA_RATE_LIMIT_RPS="500",
            ATHENA_RATE_LIMIT_BURST="500",
        )
        assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
        window = ["--from", config.first_day.isoformat(), "--to", config.last_day.isoformat()]
        ok = runner.invoke(
            cli, ["sync", "all", "--practice", "195900", *window, "--no-progress"], env=env
        )
        assert ok.exit_code == 0, ok.output
        assert "sync summary" in ok.output and "succeeded" in ok.output
        refused = runner.invoke(
            cli, ["sync", "providers", "--practice", "1128700", "--no-progress"], env=env
        )
        assert refused.exit_code == 1
        assert "Incorrect permissions." in refused.output
        runs = runner.invoke(cli, ["runs", "--status", "failed"], env=env)
        assert runs.exit_code == 0 and "1128700" in runs.output


def test_sync_rejects_a_window_that_ends_before_it_starts(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["sync", "appointments", "--practice", "1", "--from", "2026-02-01", "--to", "2026-01-01"],
        env=_env(tmp_path),
    )
    assert result.exit_code == 2 and "--to is before --from" in result.output


def test_sync_with_redis_skips_a_unit_whose_lease_is_held(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    import redis

    from worker.leases import Leases
    from worker.units import Unit

    leases = Leases(redis.Redis.from_url(redis_url), prefix=redis_prefix, ttl=30)
    held = leases.acquire(Unit("providers", "195900").key, owner="a-celery-worker")
    assert held is not None
    with serve_sandbox(SandboxConfig(seed=2, appointments=10, days=5)) as server:
        env = _env(
            tmp_path,
            ATHENA_BASE_URL=server.url,
            ATHENA_CLIENT_ID="sandbox-client",
            ATHENA_CLIENT_SECRET="sandbox-secret",
            REDIS_URL=redis_url,
            REDIS_KEY_PREFIX=redis_prefix,
        )
        runner = CliRunner()
        assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
        result = runner.invoke(
            cli, ["sync", "providers", "--practice", "195900", "--no-progress"], env=env
        )
        assert result.exit_code == 0, result.output
        assert "skipped" in result.output
        assert server.stats()["requests"].get("/v1/{practiceid}/providers") is None
        leases.release(held)
        again = runner.invoke(
            cli, ["sync", "providers", "--practice", "195900", "--no-progress"], env=env
        )
        assert again.exit_code == 0 and "succeeded" in again.output
