"""Running one contender in its own process and measuring it from the outside.

Per run: wall seconds and CPU of the load phase and the process's peak RSS (``VmHWM``), reported
by the child; its whole-process CPU (``wait4``); Postgres CPU for its database
(``bench.pg.PostgresCpu``); API requests, token requests/mints and 429s (sandbox stats
deltas); rows written per table (``pg_stat_user_tables`` deltas) and the rows it holds after.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.child import RESULT_PREFIX, RunSpec
from bench.contenders import Contender
from bench.pg import PostgresCpu, database_name, row_count, table_writes, writes_between
from bench.sandbox import Dataset, SandboxProcess, StatsDelta

REPO = Path(__file__).resolve().parents[1]


class ChildFailed(RuntimeError):
    """A contender's process exited without a result."""


@dataclass(frozen=True)
class Measurement:
    """One run of one contender."""

    contender: str
    run: str  # "full" or "re-run"
    records: int  # records the job reads (same for every contender, from the API's totals)
    fetched: int  # what the contender says it fetched (informative)
    seconds: float
    cpu_seconds: float  # load phase, all threads of the contender's process
    process_cpu_seconds: float  # whole process, interpreter start and imports included
    peak_rss_mb: float
    pg_cpu_seconds: float
    stats: StatsDelta
    pages_floor: int  # one listing per resource and per department
    plan_pages: int  # what the contender's own plan needs
    rows_written: int  # into the tables holding records
    other_rows_written: int  # bookkeeping, staging, progress
    rows_held: dict[str, int] = field(default_factory=dict)
    rows_expected: dict[str, int] = field(default_factory=dict)

    @property
    def records_per_second(self) -> float:
        """Records the job reads / wall seconds of the load."""
        return self.records / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_100k(self) -> float:
        """Contender CPU seconds per 100,000 records."""
        return self.cpu_seconds * 100_000 / max(self.records, 1)

    @property
    def pg_cpu_per_100k(self) -> float:
        """Postgres CPU seconds per 100,000 records."""
        return self.pg_cpu_seconds * 100_000 / max(self.records, 1)

    @property
    def rows_ok(self) -> bool:
        """Every table holds exactly the records the API serves."""
        return self.rows_held == self.rows_expected

    def to_json(self) -> dict[str, Any]:
        """A flat JSON summary (results.json)."""
        return {
            "contender": self.contender,
            "run": self.run,
            "records": self.records,
            "fetched": self.fetched,
            "seconds": round(self.seconds, 3),
            "records_per_second": round(self.records_per_second),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "cpu_per_100k": round(self.cpu_per_100k, 3),
            "process_cpu_seconds": round(self.process_cpu_seconds, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "pg_cpu_seconds": round(self.pg_cpu_seconds, 3),
            "pg_cpu_per_100k": round(self.pg_cpu_per_100k, 3),
            "api_requests": self.stats.api_requests,
            "token_requests": self.stats.token_requests,
            "token_mints": self.stats.token_mints,
            "throttled_429": self.stats.throttled,
            "pages_floor": self.pages_floor,
            "plan_pages": self.plan_pages,
            "rows_written": self.rows_written,
            "other_rows_written": self.other_rows_written,
            "rows_held": self.rows_held,
            "rows_expected": self.rows_expected,
            "rows_ok": self.rows_ok,
        }


def expected_rows(dataset: Dataset) -> dict[str, int]:
    """Rows each resource table must hold after a sync of the window."""
    return {**dataset.listing_totals, "appointments": dataset.appointments}


@dataclass(frozen=True)
class ChildResult:
    """What the child reported plus what ``wait4`` says about it."""

    seconds: float
    cpu_seconds: float
    fetched: int
    process_cpu_seconds: float
    peak_rss_mb: float


def child_env() -> dict[str, str]:
    """The environment of contender processes: this repo importable, dlt telemetry off."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    return env


def spawn(module: str, *args: str) -> subprocess.Popen[bytes]:
    """``python -m module args…`` in this repository, stdout piped."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args], stdout=subprocess.PIPE, cwd=REPO, env=child_env()
    )


def reap(process: subprocess.Popen[bytes]) -> tuple[str, resource.struct_rusage]:
    """Read a child's stdout to the end and wait for it; its output and its own rusage."""
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace")
    process.stdout.close()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return output, usage


def result_line(output: str, returncode: int | None, what: str) -> dict[str, Any]:
    """The JSON of a child's ``BENCH_RESULT`` line; ChildFailed if it has none or failed."""
    lines = [line for line in output.splitlines() if line.startswith(RESULT_PREFIX)]
    if returncode != 0 or not lines:
        tail = "\n".join(output.splitlines()[-20:])
        raise ChildFailed(f"{what} exited with {returncode}\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix(RESULT_PREFIX))
    return result


def run_child(spec: RunSpec) -> ChildResult:
    """Run ``python -m bench.child`` for ``spec``, wait for it, and read its rusage."""
    process = spawn("bench.child", spec.to_json())
    output, usage = reap(process)
    result = result_line(output, process.returncode, spec.contender)
    return ChildResult(
        seconds=float(result["seconds"]),
        cpu_seconds=float(result["cpu_seconds"]),
        fetched=int(result["fetched"]),
        process_cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=float(result["rss_mb"]),
    )


def measure(
    contender: Contender, spec: RunSpec, sandbox: SandboxProcess, dataset: Dataset
) -> Measurement:
    """Run the contender once and measure everything around it."""
    stats_before = sandbox.stats()
    writes_before = table_writes(spec.database_url)
    with PostgresCpu(database_name(spec.database_url)) as pg_cpu:
        result = run_child(spec)
    stats = StatsDelta.between(stats_before, sandbox.stats())
    written = writes_between(writes_before, table_writes(spec.database_url))
    data = sum(n for table, n in written.items() if contender.is_data_table(table))
    held = {r: row_count(spec.database_url, t) for r, t in contender.tables.items()}
    return Measurement(
        contender=contender.label,
        run="re-run" if spec.rerun else "full",
        records=dataset.records,
        fetched=result.fetched,
        seconds=result.seconds,
        cpu_seconds=result.cpu_seconds,
        process_cpu_seconds=result.process_cpu_seconds,
        peak_rss_mb=result.peak_rss_mb,
        pg_cpu_seconds=pg_cpu.seconds,
        stats=stats,
        pages_floor=dataset.pages_needed(spec.page_limit),
        plan_pages=contender.plan_pages(dataset, spec.page_limit),
        rows_written=data,
        other_rows_written=sum(written.values()) - data,
        rows_held=held,
        rows_expected=expected_rows(dataset),
    )
