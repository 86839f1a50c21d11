"""The deployment files: alert rules pass promtool (and fire on the series they should), the
dashboard and the rules query only metrics athena-sync exports, and the compose file is sensible
(there is no docker engine here: it is read as YAML)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from worker.db import make_engine, session_factory, upgrade
from worker.observability.database import DatabaseCollector
from worker.observability.instruments import PrometheusSink
from worker.settings import Settings
from worker.store.freshness import Thresholds

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "athena-sync.json"
METRIC = re.compile(r"\bathena_sync_\w+")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool; fail (never skip) when it is missing: CI installs it (.ci/run)."""
    if shutil.which("promtool") is None:
        pytest.fail(
            "promtool is not installed: `apt-get install -y --no-install-recommends prometheus` "
            "(.ci/run does this when it is missing)",
            pytrace=False,
        )
    return subprocess.run(["promtool", *args], cwd=ROOT, capture_output=True, text=True)


def test_the_alert_rules_pass_promtool() -> None:
    checked = promtool("check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = promtool("check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


def test_each_alert_fires_on_the_series_it_watches() -> None:
    tested = promtool("test", "rules", "tests/deploy/alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    fired = set(
        re.findall(r"alertname: (\w+)", (ROOT / "tests/deploy/alerts_test.yml").read_text())
    )
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    untested = {r["alert"] for r in rules} - fired - {"AthenaSyncDatabaseGaugesDown"}
    assert not untested, f"alerts without a promtool test: {untested}"


@pytest.fixture
def exported(fresh_pg_url: str) -> set[str]:
    """Every sample name the workers and `metrics serve` export."""
    registry = CollectorRegistry()
    sink = PrometheusSink()
    for metric in (sink.requests, sink.retries, sink.token_mints, sink.waits, sink.records):
        registry.register(metric)
    registry.register(sink.duration)
    upgrade(fresh_pg_url)
    engine = make_engine(fresh_pg_url)
    try:
        collector = DatabaseCollector(
            session_factory(engine),
            practices=("195900",),
            thresholds=Thresholds.from_settings(Settings()),
        )
        registry.register(collector)
        families = list(registry.collect())
    finally:
        engine.dispose()
    return {f"{f.name}{suffix}" for f in families for suffix in SUFFIXES[f.type]}


def _exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def test_the_dashboard_and_the_alerts_query_only_exported_metrics(exported: set[str]) -> None:
    assert "athena_sync_api_requests_total" in exported
    assert "athena_sync_freshness_seconds" in exported
    dashboard = json.loads(DASHBOARD.read_text())
    queries = list(_exprs(dashboard)) + list(_exprs(yaml.safe_load(ALERTS.read_text())))
    assert len(queries) >= 20
    used = {name for expr in queries for name in METRIC.findall(expr)}
    assert used <= exported, f"not exported: {used - exported}"
    # Every exported family shows up somewhere on the dashboard.
    shown = {name for expr in _exprs(dashboard) for name in METRIC.findall(expr)}
    families = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in exported}
    missing = {f for f in families if not any(s.startswith(f) for s in shown)}
    assert missing <= {"athena_sync_database_up"}, missing


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_compose_checks_health_and_wires_the_observability_profile() -> None:
    compose = _compose()
    services = compose["services"]
    worker, beat = services["worker"], services["beat"]
    assert "inspect ping -d celery@$$HOSTNAME" in worker["healthcheck"]["test"][1]
    assert beat["healthcheck"]["test"] == ["CMD", "athena-sync", "health", "beat"]
    assert worker["environment"]["METRICS_PORT"] == "${METRICS_PORT:-9808}"
    observability = {n for n, s in services.items() if "observability" in s.get("profiles", [])}
    assert observability == {"metrics", "prometheus", "grafana"}
    assert services["metrics"]["command"] == ["athena-sync", "metrics", "serve"]
    for name in ("postgres", "redis", "migrate", "worker", "beat"):
        assert "profiles" not in services[name], name
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    assert set(compose["volumes"]) >= {"promdata", "grafanadata"}


def test_prometheus_scrapes_every_worker_and_the_database_gauges() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    workers = jobs["athena-sync-workers"]["dns_sd_configs"][0]
    assert workers["names"] == ["worker"] and workers["port"] == 9808
    assert jobs["athena-sync-database"]["static_configs"][0]["targets"] == ["metrics:9808"]
    assert config["rule_files"] == ["alerts.yml"]
