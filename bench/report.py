"""RESULTS.md: the tables, the machine, the command, and every target with PASS or MISS."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from bench.measure import REPO, Measurement
from bench.rounds import rounds_table
from bench.scale import ScaleOptions, ScalePoint

ATHENA, BASELINE, DLT = "athena-sync", "raw baseline", "dlt"
Row = tuple[str, str, str]  # target, measured, verdict


@dataclass
class Report:
    """Everything one ``python -m bench`` run found."""

    command: str
    started: datetime
    dataset: dict[str, str]
    machine: dict[str, str]
    side: list[Measurement] = field(default_factory=list)
    rounds: list[list[Measurement]] = field(default_factory=list)
    scale: list[ScalePoint] = field(default_factory=list)
    scale_options: ScaleOptions | None = None
    memory: list[tuple[int, Measurement]] = field(default_factory=list)
    profile: str | None = None
    notes: list[str] = field(default_factory=list)

    def find(self, contender: str, run: str = "full") -> Measurement | None:
        """The measurement of one contender's run, if it ran."""
        return next((m for m in self.side if (m.contender, m.run) == (contender, run)), None)


def machine_info(admin_url: str) -> dict[str, str]:
    """CPU, memory, OS, Python, PostgreSQL and library versions, and the commit measured."""
    model = ""
    with open("/proc/cpuinfo") as handle:
        model = next(
            (ln.split(":", 1)[1].strip() for ln in handle if ln.startswith("model name")), ""
        )
    with open("/proc/meminfo") as handle:
        kb = int(next(ln.split()[1] for ln in handle if ln.startswith("MemTotal")))
    with psycopg.connect(admin_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    info = {
        "cpu": f"{model} x {os.cpu_count()}",
        "memory": f"{kb / 1024 / 1024:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": str(row[0]) if row else "?",
        "psycopg": psycopg.__version__,
        "commit": _git("rev-parse", "--short", "HEAD")
        + (
            " (+ uncommitted changes)"
            if _git("status", "--porcelain", "--", "worker", "tasks", "models")
            else ""
        ),
    }
    try:
        import dlt

        info["dlt"] = str(dlt.__version__)
    except ImportError:
        info["dlt"] = "not installed"
    return info


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def side_table(measurements: Iterable[Measurement]) -> list[str]:
    """The side-by-side table in Markdown."""
    lines = [
        "| contender | run | seconds | records/s | CPU-s / 100k | peak RSS MB "
        "| Postgres CPU-s / 100k | API requests (own plan / floor) | token mints | 429s "
        "| rows written (records / other) | rows match API |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|:-:|",
    ]
    for m in measurements:
        lines.append(
            f"| {m.contender} | {m.run} | {m.seconds:.1f} | {m.records_per_second:,.0f} "
            f"| {m.cpu_per_100k:.2f} | {m.peak_rss_mb:.0f} | {m.pg_cpu_per_100k:.2f} "
            f"| {m.stats.api_requests} ({m.plan_pages} / {m.pages_floor}) "
            f"| {m.stats.token_mints} | {m.stats.throttled} "
            f"| {m.rows_written:,} / {m.other_rows_written:,} | {'yes' if m.rows_ok else 'NO'} |"
        )
    return lines


def scale_table(points: Iterable[ScalePoint]) -> list[str]:
    """The scaling table in Markdown."""
    lines = [
        "| worker processes | requests/s (steady) | requests/s (whole run) | appointments/s "
        "| seconds | 429s | token mints | failed units | largest worker RSS MB |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for p in points:
        lines.append(
            f"| {p.workers} | {p.steady_rps:.2f} | {p.overall_rps:.2f} "
            f"| {p.records_per_second:,.0f} | {p.seconds:.1f} | {p.stats.throttled} "
            f"| {p.stats.token_mints} | {p.failed_units} | {p.peak_rss_mb:.0f} |"
        )
    return lines


def memory_table(memory: Iterable[tuple[int, Measurement]]) -> list[str]:
    """athena-sync's full sync at each dataset size."""
    lines = [
        "| appointments | records | seconds | records/s | CPU-s / 100k | peak RSS MB |",
        "|--:|--:|--:|--:|--:|--:|",
    ]
    for size, m in memory:
        lines.append(
            f"| {size:,} | {m.records:,} | {m.seconds:.1f} | {m.records_per_second:,.0f} "
            f"| {m.cpu_per_100k:.2f} | {m.peak_rss_mb:.0f} |"
        )
    return lines


def _speed_rows(report: Report, ours: Measurement) -> list[Row]:
    rows: list[Row] = []
    base = report.find(BASELINE)
    if base is not None:
        speed = _ratio(ours.records_per_second, base.records_per_second)
        cpu = _ratio(ours.cpu_per_100k, base.cpu_per_100k)
        total = _ratio(
            ours.cpu_per_100k + ours.pg_cpu_per_100k, base.cpu_per_100k + base.pg_cpu_per_100k
        )
        pg = _ratio(ours.pg_cpu_per_100k, base.pg_cpu_per_100k)
        rows += [
            ("records/s ≥ 1.0x the raw baseline", f"{speed:.2f}x", _verdict(speed >= 1.0)),
            (
                "CPU per 100k (client + Postgres) ≤ 1.2x the baseline's",
                f"{total:.2f}x",
                _verdict(total <= 1.2),
            ),
            ("(info) client CPU per 100k vs the baseline's", f"{cpu:.2f}x", "—"),
            ("(info) Postgres CPU per 100k vs the baseline's", f"{pg:.2f}x", "—"),
        ]
    dlt = report.find(DLT)
    if dlt is not None:
        speed = _ratio(ours.records_per_second, dlt.records_per_second)
        rows.append(("records/s ≈ 3x dlt", f"{speed:.2f}x", _verdict(speed >= 3.0)))
        if base is not None:
            floor = _ratio(base.records_per_second, dlt.records_per_second)
            rows.append(("(info) raw baseline vs dlt, records/s", f"{floor:.2f}x", "—"))
    return rows


def _memory_rows(report: Report, ours: Measurement) -> list[Row]:
    again = report.find(ATHENA, "re-run")
    peak = max(ours.peak_rss_mb, again.peak_rss_mb if again else 0.0)
    rows: list[Row] = [("peak RSS ≤ 100 MB", f"{peak:.0f} MB", _verdict(peak <= 100))]
    if len(report.memory) >= 2:
        (small, low), (large, high) = report.memory[0], report.memory[-1]
        growth = _ratio(high.peak_rss_mb, low.peak_rss_mb) - 1
        rows.append(
            (
                f"peak RSS flat (within 10%) from {small:,} to {large:,} appointments",
                f"{low.peak_rss_mb:.0f} → {high.peak_rss_mb:.0f} MB ({growth:+.1%})",
                _verdict(abs(growth) <= 0.10),
            )
        )
    else:
        rows.append(("peak RSS flat from 200k to 1M", "not measured (add --memory-scan)", "—"))
    return rows


def _correctness_rows(report: Report, ours: Measurement) -> list[Row]:
    rows: list[Row] = []
    again = report.find(ATHENA, "re-run")
    if again is not None:
        rows.append(
            (
                "an unchanged re-sync writes 0 rows",
                f"{again.rows_written} record rows ({again.other_rows_written} bookkeeping rows)",
                _verdict(again.rows_written == 0),
            )
        )
    runs = [m for m in (ours, again) if m is not None]
    requests = ", ".join(f"{m.stats.api_requests} for {m.plan_pages}" for m in runs)
    rows.append(
        (
            "API requests = pages needed (own plan; floor in the table)",
            requests,
            _verdict(all(m.stats.api_requests == m.plan_pages for m in runs)),
        )
    )
    mints = [m.stats.token_mints for m in runs] + [p.stats.token_mints for p in report.scale]
    rows.append(
        (
            "1 token mint per token lifetime, however many processes",
            f"{', '.join(map(str, mints))} (per run / per N)",
            _verdict(all(n == 1 for n in mints)),
        )
    )
    matched = all(m.rows_ok for m in report.side)
    rows.append(("(check) every table holds exactly what the API serves", "", _verdict(matched)))
    return rows


def _scale_rows(report: Report) -> list[Row]:
    if not report.scale or report.scale_options is None:
        return []
    budget = report.scale_options.rps
    rates = [p.steady_rps for p in report.scale]
    reached = next((i for i, r in enumerate(rates) if r >= 0.95 * budget), None)
    holds = reached is not None and all(
        0.95 * budget <= r <= 1.05 * budget for r in rates[reached:]
    )
    throttled = sum(p.stats.throttled for p in report.scale)
    shown = ", ".join(f"{p.workers}: {p.steady_rps:.2f}" for p in report.scale)
    return [
        (
            f"throughput climbs to the {budget:g} req/s budget and holds it (±5%)",
            shown,
            _verdict(holds),
        ),
        ("zero 429 responses while scaling", str(throttled), _verdict(throttled == 0)),
    ]


def target_rows(report: Report) -> list[Row]:
    """Every target of the issue that this run measured."""
    ours = report.find(ATHENA)
    rows: list[Row] = []
    if ours is not None:
        rows += _speed_rows(report, ours) + _memory_rows(report, ours)
        rows += _correctness_rows(report, ours)
    return rows + _scale_rows(report)


def render(report: Report) -> str:
    """The whole RESULTS.md."""
    out = [
        "# Benchmark results",
        "",
        f"Measured {report.started:%Y-%m-%d %H:%M} UTC with `{report.command}`.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in report.machine.items()),
        "",
        "| dataset | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in report.dataset.items()),
        "",
    ]
    if report.side:
        runs = f" (medians of {len(report.rounds)} rounds)" if len(report.rounds) > 1 else ""
        out += [
            f"## Side by side: full load, then an unchanged re-run{runs}",
            "",
            *side_table(report.side),
            "",
        ]
    if len(report.rounds) > 1:
        out += ["### Every round (full loads)", "", *rounds_table(report.rounds), ""]
    rows = target_rows(report)
    if rows:
        out += ["## Targets (athena-sync)", "", "| target | measured | |", "|---|---|:-:|"]
        out += [f"| {t} | {m} | {v} |" for t, m, v in rows] + [""]
    if report.scale and report.scale_options is not None:
        o = report.scale_options
        out += [
            "## Scaling: worker processes sharing one request budget",
            "",
            f"Sandbox latency {o.latency_ms} ms per request and a {o.rps:g} requests/s ceiling per "
            f"practice (429 beyond it); athena-sync with `ATHENA_RATE_LIMIT_RPS={o.rps:g}` and "
            f"`REDIS_URL` (one token bucket and one token for all processes); page limit "
            f"{o.page_limit}.",
            "",
            *scale_table(report.scale),
            "",
        ]
    if report.memory:
        out += [
            "## Memory: athena-sync full sync by dataset size",
            "",
            *memory_table(report.memory),
            "",
        ]
    if report.notes:
        out += ["## Notes", "", *(f"- {note}" for note in report.notes), ""]
    if report.profile:
        out += [
            "## Profile of athena-sync's full sync (cProfile, top by own time)",
            "",
            "A separate run (profiling slows it down). Main thread only: the fetch-ahead thread's "
            "HTTP reads and JSON decoding are not in it; `psycopg … wait` is the main thread "
            "waiting for Postgres to execute the page's upsert.",
            "",
            "```",
        ]
        out += [report.profile.rstrip(), "```", ""]
    return "\n".join(out)
