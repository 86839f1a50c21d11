"""Several rounds of the side-by-side scenario: medians for the tables, every round's ratios.

The machine is shared and noisy, so each round runs every contender once, one after another
(a noisy minute then hurts all of them), and the report shows the median of each measure over
the rounds next to the athena-sync / baseline ratios of every round, which say how noisy it was.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from bench.measure import Measurement

ATHENA, BASELINE = "athena-sync", "raw baseline"


def median_of(runs: Sequence[Measurement]) -> Measurement:
    """One measurement of several runs: medians of times and CPU, the worst of everything a
    target bounds (peak RSS, rows written, rows matching)."""

    def median(value: Callable[[Measurement], float]) -> float:
        return float(statistics.median(value(m) for m in runs))

    mismatched = [m for m in runs if not m.rows_ok]
    return replace(
        runs[0],
        seconds=median(lambda m: m.seconds),
        cpu_seconds=median(lambda m: m.cpu_seconds),
        process_cpu_seconds=median(lambda m: m.process_cpu_seconds),
        pg_cpu_seconds=median(lambda m: m.pg_cpu_seconds),
        peak_rss_mb=max(m.peak_rss_mb for m in runs),
        stats=max(runs, key=lambda m: m.stats.api_requests).stats,
        rows_written=max(m.rows_written for m in runs),
        other_rows_written=max(m.other_rows_written for m in runs),
        rows_held=(mismatched or runs)[0].rows_held,
    )


def medians(rounds: Iterable[Sequence[Measurement]]) -> list[Measurement]:
    """Per (contender, run), in the order of the first round, the median over the rounds."""
    grouped: dict[tuple[str, str], list[Measurement]] = {}
    for measured in rounds:
        for m in measured:
            grouped.setdefault((m.contender, m.run), []).append(m)
    return [median_of(runs) for runs in grouped.values()]


@dataclass(frozen=True)
class RoundRatios:
    """athena-sync against the baseline within one round (full loads)."""

    speed: float
    cpu: float
    total_cpu: float


def round_ratios(measured: Sequence[Measurement]) -> RoundRatios | None:
    """The ratios of one round, None when either contender is missing from it."""
    found = {m.contender: m for m in measured if m.run == "full"}
    ours, base = found.get(ATHENA), found.get(BASELINE)
    if ours is None or base is None:
        return None
    return RoundRatios(
        speed=ours.records_per_second / base.records_per_second,
        cpu=ours.cpu_per_100k / base.cpu_per_100k,
        total_cpu=(ours.cpu_per_100k + ours.pg_cpu_per_100k)
        / (base.cpu_per_100k + base.pg_cpu_per_100k),
    )


def rounds_table(rounds: Sequence[Sequence[Measurement]]) -> list[str]:
    """Every round's full-load numbers and ratios, in Markdown."""
    lines = [
        "| round | athena-sync records/s | baseline records/s | records/s ratio "
        "| CPU-s / 100k (client + Postgres): athena-sync / baseline | CPU ratio "
        "| client CPU ratio |",
        "|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for number, measured in enumerate(rounds, 1):
        found = {m.contender: m for m in measured if m.run == "full"}
        ratios = round_ratios(measured)
        if ratios is None:
            continue
        ours, base = found[ATHENA], found[BASELINE]
        lines.append(
            f"| {number} | {ours.records_per_second:,.0f} | {base.records_per_second:,.0f} "
            f"| {ratios.speed:.2f}x | {ours.cpu_per_100k + ours.pg_cpu_per_100k:.2f} / "
            f"{base.cpu_per_100k + base.pg_cpu_per_100k:.2f} | {ratios.total_cpu:.2f}x "
            f"| {ratios.cpu:.2f}x |"
        )
    return lines
