"""`athena-sync doctor`: check credentials, practices, endpoints, database and Redis in one go."""

from __future__ import annotations

import json
from pathlib import Path

import click

from worker.cli.common import load
from worker.cli.output import console


def _practice_ids(
    _: click.Context, __: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    ids = tuple(part.strip() for value in values for part in value.split(",") if part.strip())
    bad = [pid for pid in ids if not pid.isdigit()]
    if bad:
        raise click.BadParameter(f"practice ids are numbers, got {', '.join(bad)}")
    return ids


@click.command()
@click.option(
    "--practice",
    "practices",
    multiple=True,
    callback=_practice_ids,
    help="Practice id to probe (repeatable) [default: ATHENA_PRACTICE_IDS].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON for scripts.")
@click.option(
    "--support-report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a Markdown summary for a support request (no secrets) to this file.",
)
def doctor(practices: tuple[str, ...], as_json: bool, support_report: Path | None) -> None:
    """Check configuration, token, practices, endpoints, database and Redis; exit 0 only when
    everything the sync needs works."""
    from worker.doctor import run_doctor
    from worker.doctor.render import api_table, setup_table, summary_line, support_markdown

    report = run_doctor(load(), practices=practices)
    if support_report is not None:
        support_report.write_text(support_markdown(report), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        console.print(setup_table(report))
        console.print(api_table(report))
        console.print(summary_line(report))
        if support_report is not None:
            console.print(f"support report written to {support_report}", highlight=False)
    raise SystemExit(report.exit_code)
