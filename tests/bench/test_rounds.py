"""Several rounds of the side-by-side scenario: medians, worst cases and every round's ratios."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from bench.measure import Measurement
from bench.report import Report, render, target_rows
from bench.rounds import medians, round_ratios
from bench.sandbox import StatsDelta

STATS = StatsDelta(api_requests=10, token_requests=1, token_mints=1, throttled=0)


def measurement(contender: str, run: str, seconds: float, cpu: float, pg: float) -> Measurement:
    return Measurement(
        contender=contender,
        run=run,
        records=100_000,
        fetched=100_000,
        seconds=seconds,
        cpu_seconds=cpu,
        process_cpu_seconds=cpu + 1,
        peak_rss_mb=80,
        pg_cpu_seconds=pg,
        stats=STATS,
        pages_floor=10,
        plan_pages=10,
        rows_written=100_000 if run == "full" else 0,
        other_rows_written=5,
        rows_held={"appointments": 1},
        rows_expected={"appointments": 1},
    )


def test_medians_take_the_middle_round_and_the_worst_bound() -> None:
    rounds = [
        [
            measurement("athena-sync", "re-run", s, 2.0, 2.0),
            measurement("raw baseline", "full", 4, 1, 2),
        ]
        for s in (5.0, 9.0, 7.0)
    ]
    rounds[1][0] = replace(rounds[1][0], rows_written=3, peak_rss_mb=120)
    ours, base = medians(rounds)
    assert (ours.contender, ours.run, ours.seconds) == ("athena-sync", "re-run", 7.0)
    assert (ours.rows_written, ours.peak_rss_mb) == (3, 120), "the worst round, not the median"
    assert base.seconds == 4


def test_targets_compare_client_plus_postgres_cpu_and_every_round_is_shown() -> None:
    rounds = [
        [
            measurement("athena-sync", "full", 10, 2.0, 2.5),
            measurement("raw baseline", "full", 10, 1.5, 2.5),
        ],
        [
            measurement("athena-sync", "full", 8, 2.0, 2.5),
            measurement("raw baseline", "full", 10, 1.5, 2.5),
        ],
    ]
    ratios = round_ratios(rounds[1])
    assert ratios is not None and round(ratios.speed, 2) == 1.25
    report = Report("test", datetime.now(), {}, {}, side=medians(rounds), rounds=rounds)
    verdicts = {target: (measured, verdict) for target, measured, verdict in target_rows(report)}
    # client 2.0 vs 1.5 alone would miss; client + Postgres is 4.5 vs 4.0 = 1.125x.
    assert verdicts["CPU per 100k (client + Postgres) ≤ 1.2x the baseline's"] == ("1.12x", "PASS")
    assert verdicts["records/s ≥ 1.0x the raw baseline"] == ("1.11x", "PASS")
    text = render(report)
    assert "medians of 2 rounds" in text
    assert "| 2 | 12,500 | 10,000 | 1.25x |" in text
