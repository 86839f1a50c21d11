"""The benchmark harness on a tiny dataset, against real Postgres and the sandbox served by a
child process: what it measures must match the sandbox's ground truth, so the benchmark cannot
silently rot. The dlt contender is an optional extra and is not run here."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

import pytest

from bench.contenders import ATHENA, BASELINE
from bench.measure import Measurement
from bench.report import Report, render, target_rows
from bench.sandbox import Dataset, DatasetSpec, SandboxProcess, measure_dataset
from bench.scale import ScaleOptions, run_scale
from bench.side_by_side import run_contender

SPEC = DatasetSpec(appointments=2000, departments=4, days=90)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(SPEC) as server:
        yield server


@pytest.fixture(scope="module")
def dataset(sandbox: SandboxProcess) -> Dataset:
    return measure_dataset(sandbox.url, SPEC.window)


@pytest.fixture
def admin_url(pg_server_url: str) -> str:
    """The libpq form of the test server's URL (fails loudly when Postgres is down)."""
    return pg_server_url.replace("postgresql+psycopg://", "postgresql://", 1)


def truth_counts(sandbox: SandboxProcess) -> dict[str, int]:
    """Rows per resource the sandbox holds for the benchmark window."""
    truth = sandbox.truth()
    start, end = SPEC.window
    in_window = [
        a
        for a in truth["appointments"]
        if start <= datetime.strptime(a["date"], "%m/%d/%Y").date() <= end
    ]
    return {
        "providers": len(truth["providers"]),
        "departments": len(truth["departments"]),
        "appointmenttypes": len(truth["appointmenttypes"]),
        "appointments": len(in_window),
    }


def run(contender, sandbox, dataset, admin_url) -> list[Measurement]:
    return run_contender(
        contender,
        sandbox,
        dataset,
        admin_url=admin_url,
        window=SPEC.window,
        page_limit=300,
        say=lambda _: None,
    )


def test_window_spans_the_fall_dst_change():
    start, end = SPEC.window
    assert start <= date(2026, 11, 1) <= end


def test_dataset_counts_are_the_sandbox_truth(sandbox, dataset):
    truth = truth_counts(sandbox)
    assert {**dataset.listing_totals, "appointments": dataset.appointments} == truth
    assert dataset.records == sum(truth.values())
    assert dataset.pages_needed(300, windowed=True) > dataset.pages_needed(300)


def test_athena_sync_loads_everything_and_its_re_sync_writes_nothing(sandbox, dataset, admin_url):
    full, again = run(ATHENA, sandbox, dataset, admin_url)

    assert full.rows_held == truth_counts(sandbox)
    assert full.rows_ok and again.rows_ok
    assert full.rows_written == dataset.records
    assert again.rows_written == 0
    assert again.other_rows_written > 0  # its run bookkeeping is counted, apart
    for m in (full, again):
        assert m.stats.api_requests == m.plan_pages
        assert (m.stats.token_mints, m.stats.throttled) == (1, 0)
        assert m.seconds > 0 and m.cpu_seconds > 0 and m.peak_rss_mb > 20
        assert m.pg_cpu_seconds > 0
    report = Report("test", datetime.now(), {}, {}, side=[full, again])
    rows = {target: verdict for target, _, verdict in target_rows(report)}
    assert rows["an unchanged re-sync writes 0 rows"] == "PASS"
    assert "| athena-sync | re-run |" in render(report)


def test_baseline_loads_everything_and_rewrites_it_on_a_re_run(sandbox, dataset, admin_url):
    full, again = run(BASELINE, sandbox, dataset, admin_url)

    assert full.rows_held == truth_counts(sandbox)
    assert full.rows_written == again.rows_written == dataset.records
    assert full.other_rows_written == 0
    assert full.stats.api_requests == full.pages_floor == full.plan_pages
    assert full.stats.token_mints == 1


def test_scaling_workers_share_one_budget_and_one_token(sandbox, dataset, admin_url, redis_url):
    options = ScaleOptions(
        workers=(2,),
        latency_ms=20,
        rps=20.0,
        page_limit=100,
        window=SPEC.window,
        admin_url=admin_url,
        redis_url=redis_url,
    )
    [point] = run_scale(sandbox, options, say=lambda _: None)

    assert point.appointments == dataset.appointments
    assert point.failed_units == 0
    assert point.units == len(dataset.per_window)
    # The sandbox answers 429 above the same ceiling: none means the shared bucket held.
    assert (point.stats.throttled, point.stats.token_mints) == (0, 1)
    assert 0 < point.worker_requests <= point.stats.api_requests
