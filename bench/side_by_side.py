"""Scenario 1: every contender, each on a fresh database, a full load then an unchanged re-run."""

from __future__ import annotations

import io
import os
import pstats
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import date
from typing import Any

from bench.child import RunSpec
from bench.contenders import Contender
from bench.measure import REPO, ChildFailed, Measurement, measure
from bench.pg import fresh_database, sqlalchemy_url
from bench.sandbox import Dataset, SandboxProcess, job_plan, warm_cache

Say = Callable[[str], None]


def migrate(database_url: str) -> None:
    """athena-sync's schema (alembic upgrade head), as a deployment would before any sync."""
    from worker.db import upgrade

    upgrade(sqlalchemy_url(database_url))


def run_contender(
    contender: Contender,
    sandbox: SandboxProcess,
    dataset: Dataset,
    *,
    admin_url: str,
    window: tuple[date, date],
    page_limit: int,
    say: Say = print,
    warm: bool = True,
    rerun: bool = True,
) -> list[Measurement]:
    """A full load and an unchanged re-run of one contender on its own fresh database.

    ``warm`` first reads every page of the contender's plan, so the sandbox serves it from its
    page cache and the contender measures itself rather than the sandbox rendering JSON."""
    with fresh_database(admin_url) as database_url, tempfile.TemporaryDirectory() as work:
        if contender.migrate:
            migrate(database_url)
        if warm:
            plan = job_plan(dataset, window, windowed=contender.windowed)
            warm_cache(sandbox.url, plan, page_limit)
        spec = RunSpec(
            contender=contender.name,
            base_url=sandbox.url,
            database_url=database_url,
            start=window[0],
            end=window[1],
            page_limit=page_limit,
            rerun=False,
            work_dir=work,
        )
        results = []
        for run_spec in (spec, replace(spec, rerun=True))[: 2 if rerun else 1]:
            result = measure(contender, run_spec, sandbox, dataset)
            say(line(result))
            results.append(result)
    return results


def run_all(
    contenders: Iterable[Contender],
    sandbox: SandboxProcess,
    dataset: Dataset,
    *,
    admin_url: str,
    window: tuple[date, date],
    page_limit: int,
    say: Say = print,
) -> list[Measurement]:
    """Every contender in turn (each in its own processes, on its own database)."""
    results: list[Measurement] = []
    for contender in contenders:
        try:
            results.extend(
                run_contender(
                    contender,
                    sandbox,
                    dataset,
                    admin_url=admin_url,
                    window=window,
                    page_limit=page_limit,
                    say=say,
                )
            )
        except ChildFailed as failed:
            say(f"  {contender.label} FAILED (left out of the results): {failed}")
    return results


def run_rounds(
    rounds: int,
    contenders: Sequence[Contender],
    sandbox: SandboxProcess,
    dataset: Dataset,
    **kwargs: Any,
) -> list[list[Measurement]]:
    """``run_all`` ``rounds`` times: every contender once per round, rounds one after another."""
    say: Say = kwargs.get("say", print)
    measured = []
    for number in range(1, rounds + 1):
        if rounds > 1:
            say(f" round {number} of {rounds}")
        measured.append(run_all(contenders, sandbox, dataset, **kwargs))
    return measured


def profile(
    contender: Contender,
    sandbox: SandboxProcess,
    dataset: Dataset,
    *,
    admin_url: str,
    window: tuple[date, date],
    page_limit: int,
    top: int = 30,
) -> str:
    """A full load under cProfile (a separate run: profiling slows it down), top functions by
    own time, and the sandbox's view of the run."""
    with fresh_database(admin_url) as database_url, tempfile.TemporaryDirectory() as work:
        if contender.migrate:
            migrate(database_url)
        warm_cache(sandbox.url, job_plan(dataset, window, windowed=contender.windowed), page_limit)
        path = os.path.join(work, "profile.out")
        spec = RunSpec(
            contender=contender.name,
            base_url=sandbox.url,
            database_url=database_url,
            start=window[0],
            end=window[1],
            page_limit=page_limit,
            rerun=False,
            work_dir=work,
            profile_path=path,
        )
        measured = measure(contender, spec, sandbox, dataset)
        text = io.StringIO()
        stats = pstats.Stats(path, stream=text)
        stats.sort_stats("tottime").print_stats(top)
    body = text.getvalue()
    body = body[body.index("ncalls") :] if "ncalls" in body else body
    for prefix in (
        f"{sys.prefix}/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages/",
        f"{REPO}/",
    ):
        body = body.replace(prefix, "")
    head = (
        f"{contender.label} full load under cProfile: {measured.seconds:.1f} s wall, "
        f"{measured.cpu_seconds:.1f} CPU-s, Postgres {measured.pg_cpu_seconds:.1f} CPU-s\n"
    )
    return head + "\n".join(line.rstrip()[:160] for line in body.splitlines())


def line(m: Measurement) -> str:
    """One progress line for the console."""
    return (
        f"  {m.contender:<13} {m.run:<6} {m.records_per_second:>8,.0f} rec/s  "
        f"{m.cpu_per_100k:5.2f} CPU-s/100k  {m.peak_rss_mb:5.0f} MB  "
        f"PG {m.pg_cpu_per_100k:4.2f} CPU-s/100k  {m.stats.api_requests} requests "
        f"(plan {m.plan_pages}, floor {m.pages_floor})  {m.stats.token_mints} mint(s)  "
        f"{m.rows_written:,} rows written (+{m.other_rows_written:,} other)  "
        f"rows {'ok' if m.rows_ok else 'MISMATCH'}"
    )
