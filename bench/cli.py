"""``python -m bench``: athena-sync side by side with a raw COPY loader and dlt, then scaling.

Starts the built-in sandbox (a child process) with a synthetic practice, and runs every
contender in its own process on its own fresh Postgres database: a full load, then an
unchanged re-run. Then N = 1, 2, 4, 8 athena-sync worker processes against a sandbox with
latency and a shared requests/s ceiling. Writes bench/RESULTS.md, bench/results.json and
bench/results.png.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import chart
from bench.contenders import CONTENDERS, dlt_available
from bench.pg import DEFAULT_ADMIN_URL
from bench.report import Report, machine_info, render
from bench.rounds import medians
from bench.sandbox import DatasetSpec, SandboxProcess, measure_dataset
from bench.scale import ScaleOptions, run_scale
from bench.side_by_side import profile, run_contender, run_rounds

HERE = Path(__file__).resolve().parent
METHOD = [
    "**records** = every record the job reads once: providers + departments (hidden ones "
    "included) + appointment types + appointments in the window (cancelled included), counted "
    "by the API's `totalcount`s; the same number for every contender. records/s = records / wall "
    "seconds of the load, measured inside the contender's process after its imports.",
    "Each run is its own process (`python -m bench.child`): **CPU** = that process's user + "
    "system seconds during the load (all threads); **peak RSS** = its own high-water mark "
    "(`VmHWM`, whole life, imports included; `ru_maxrss` would inherit the harness's). "
    "**Postgres CPU** = user + system seconds of the backends "
    "and autovacuum workers of the contender's database plus walwriter, checkpointer and "
    "background writer, sampled from /proc every 0.1 s.",
    "**API requests**, **token mints** and **429s** are deltas of the sandbox's own counters. "
    "'own plan' = pages the contender's request plan needs (a listing per resource and per "
    "department; athena-sync reads appointments per 31-day window, as SYNC_WINDOW_DAYS requires, "
    "and the default departments listing to tell hidden departments apart); 'floor' = one "
    "listing per resource and per department over the whole window.",
    "**rows written** = n_tup_ins + n_tup_upd + n_tup_del deltas of pg_stat_user_tables, read "
    "once no session of the contender is connected (a backend flushes its counters when it "
    "exits): 'records' = tables holding synced records; 'other' = bookkeeping (sync_runs, "
    "sync_state, unit_fences; dlt's _dlt_* tables and staging dataset).",
    "Before each contender the harness reads every page of its plan once, so all of them are "
    "served from the sandbox's page cache: the contenders are measured, not the sandbox. The "
    "sandbox allows 120 token mints a minute (the preview allows 5) because every run is a new "
    "process that mints its own token.",
    "athena-sync: `open_runtime` + `run_request` of all resources (schema migrated beforehand); "
    "the re-run is a `reconcile` of the same window. Raw baseline (bench/baseline.py): requests "
    "+ json + psycopg COPY into a temp table + one INSERT … ON CONFLICT DO UPDATE (no WHERE) per "
    "page, a fetch-ahead thread, typed tables with raw JSONB; its times are parsed naively in "
    "UTC (not zone- or DST-correct). dlt (bench/dlt_loader.py): RESTClient + "
    "OAuth2ClientCredentials + OffsetPaginator, merge on the record ids, dlt's defaults.",
    "The machine is shared (2 cores: contender, Postgres and sandbox compete for them); numbers "
    "move by ±10-20% between runs. With `--runs N` every contender runs once per round, the "
    "rounds one after another; the side-by-side table shows each measure's median over the "
    "rounds (peak RSS and rows written: the worst round), the targets compare those medians, "
    "and the rounds table shows every round's own ratios: how noisy the machine was.",
]


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = p.add_argument_group("dataset (side by side)")
    data.add_argument("--appointments", type=int, default=200_000, help="[200000]")
    data.add_argument("--departments", type=int, default=20, help="[20]")
    data.add_argument(
        "--days",
        type=int,
        default=90,
        help="days around 2026-10-20, which include the 2026-11-01 DST change [90]",
    )
    data.add_argument("--page-limit", type=int, default=1000, help="records per page [1000]")
    data.add_argument("--latency-ms", type=int, default=0, help="sandbox delay per request [0]")
    data.add_argument(
        "--runs",
        type=int,
        default=3,
        help="rounds of the side-by-side scenario; tables show medians [3]",
    )
    data.add_argument(
        "--contenders",
        default="athena-sync,baseline,dlt",
        help="comma-separated subset of athena-sync,baseline,dlt [all]",
    )
    scale = p.add_argument_group("scaling")
    scale.add_argument("--scale-workers", type=_ints, default=(1, 2, 4, 8), help="[1,2,4,8]")
    scale.add_argument("--scale-appointments", type=int, default=40_000, help="[40000]")
    scale.add_argument("--scale-page-limit", type=int, default=100, help="[100]")
    scale.add_argument("--scale-latency-ms", type=int, default=150, help="[150]")
    scale.add_argument("--scale-rps", type=float, default=10.0, help="shared budget [10]")
    what = p.add_argument_group("what to run")
    what.add_argument("--skip-side", action="store_true", help="no side-by-side scenario")
    what.add_argument("--skip-scale", action="store_true", help="no scaling scenario")
    what.add_argument(
        "--memory-scan",
        type=_ints,
        nargs="?",
        const=(200_000, 1_000_000),
        default=None,
        metavar="SIZES",
        help="also run athena-sync's full sync at these appointment counts and "
        "compare peak RSS [200000,1000000] (slow)",
    )
    what.add_argument(
        "--profile",
        action="store_true",
        help="add a cProfile of athena-sync's full load (an extra, separate run) to RESULTS.md",
    )
    where = p.add_argument_group("services and output")
    where.add_argument("--pg-admin-url", default=DEFAULT_ADMIN_URL, help=f"[{DEFAULT_ADMIN_URL}]")
    where.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="[%(default)s]")
    where.add_argument("--output-dir", type=Path, default=HERE, help="[bench/]")
    return p


def _contenders(names: str, report: Report) -> list[str]:
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in CONTENDERS]
    if unknown:
        raise SystemExit(f"unknown contender(s): {', '.join(unknown)}")
    if "dlt" in chosen and not dlt_available():
        message = 'dlt contender skipped: dlt is not installed (pip install -e ".[bench]")'
        print(message)
        report.notes.insert(0, message)
        chosen.remove("dlt")
    return chosen


def side_by_side(args: argparse.Namespace, report: Report) -> None:
    """Scenario 1 (and the optional profile)."""
    spec = DatasetSpec(args.appointments, args.departments, args.days)
    names = _contenders(args.contenders, report)
    print(
        f"starting the sandbox: {args.appointments:,} appointments, {args.departments} departments"
    )
    with SandboxProcess(spec) as sandbox:
        if args.latency_ms:
            sandbox.set_faults(latency_ms=args.latency_ms)
        dataset = measure_dataset(sandbox.url, spec.window)
        report.dataset["records per load"] = f"{dataset.records:,}"
        report.dataset["pages: floor / athena-sync's plan"] = (
            f"{dataset.pages_needed(args.page_limit)} / "
            f"{CONTENDERS['athena-sync'].plan_pages(dataset, args.page_limit)}"
        )
        print(f"side by side ({dataset.records:,} records per load):")
        kwargs = {
            "admin_url": args.pg_admin_url,
            "window": spec.window,
            "page_limit": args.page_limit,
        }
        report.rounds = run_rounds(
            args.runs, [CONTENDERS[n] for n in names], sandbox, dataset, **kwargs
        )
        report.side = medians(report.rounds)
        if args.profile:
            print("profiling athena-sync's full load")
            report.profile = profile(CONTENDERS["athena-sync"], sandbox, dataset, **kwargs)
        missing = {CONTENDERS[n].label for n in names} - {m.contender for m in report.side}
        for label in sorted(missing):
            report.notes.insert(0, f"**{label} failed** in this run; see the console output.")


def memory_scan(args: argparse.Namespace, report: Report) -> None:
    """athena-sync's full sync at each size, each against its own sandbox (not warmed: the
    sandbox's page cache cannot hold the larger sets)."""
    print("memory scan:")
    for size in args.memory_scan:
        spec = DatasetSpec(size, args.departments, args.days)
        with SandboxProcess(spec) as sandbox:
            dataset = measure_dataset(sandbox.url, spec.window)
            [result] = run_contender(
                CONTENDERS["athena-sync"],
                sandbox,
                dataset,
                admin_url=args.pg_admin_url,
                window=spec.window,
                page_limit=args.page_limit,
                warm=False,
                rerun=False,
            )
        report.memory.append((size, result))


def scaling(args: argparse.Namespace, report: Report) -> None:
    """Scenario 2."""
    spec = DatasetSpec(args.scale_appointments, args.departments, args.days)
    options = ScaleOptions(
        workers=args.scale_workers,
        latency_ms=args.scale_latency_ms,
        rps=args.scale_rps,
        page_limit=args.scale_page_limit,
        window=spec.window,
        admin_url=args.pg_admin_url,
        redis_url=args.redis_url,
    )
    print(
        f"scaling ({args.scale_appointments:,} appointments, {options.latency_ms} ms latency, "
        f"{options.rps:g} req/s budget):"
    )
    with SandboxProcess(spec) as sandbox:
        report.scale = run_scale(sandbox, options)
    report.scale_options = options


def write(report: Report, output: Path) -> None:
    """RESULTS.md, results.json and (with matplotlib) results.png."""
    output.mkdir(parents=True, exist_ok=True)
    (output / "RESULTS.md").write_text(render(report))
    payload = {
        "command": report.command,
        "started": report.started.isoformat(),
        "machine": report.machine,
        "dataset": report.dataset,
        "side": [m.to_json() for m in report.side],
        "rounds": [[m.to_json() for m in measured] for measured in report.rounds],
        "scale": [p.to_json() for p in report.scale],
        "memory": [{"appointments": n, **m.to_json()} for n, m in report.memory],
    }
    (output / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {output / 'RESULTS.md'} and {output / 'results.json'}")
    if not report.side:
        return
    if chart.available():
        chart.write_chart(report, output / "results.png")
        print(f"wrote {output / 'results.png'}")
    else:
        print('chart skipped: matplotlib is not installed (pip install -e ".[bench]")')


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark."""
    args = parser().parse_args(argv)
    start, end = DatasetSpec(args.appointments, args.departments, args.days).window
    report = Report(
        command=shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)]),
        started=datetime.now(UTC),
        dataset={
            "appointments": f"{args.appointments:,}",
            "departments": str(args.departments),
            "window": f"{start} .. {end} ({args.days} days; US DST ends 2026-11-01)",
            "page limit": str(args.page_limit),
            "sandbox latency": f"{args.latency_ms} ms",
        },
        machine=machine_info(args.pg_admin_url),
    )
    report.notes.extend(METHOD)
    scenarios = [
        (not args.skip_side, side_by_side),
        (bool(args.memory_scan), memory_scan),
        (not args.skip_scale, scaling),
    ]
    for wanted, scenario in scenarios:
        if wanted:
            scenario(args, report)
            write(report, args.output_dir)  # after each scenario: a later failure keeps these
