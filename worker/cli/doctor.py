"""`athena-sync doctor`: check credentials, practices, endpoints, database and Redis in one go."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.markup import escape

from worker.cli.common import load
from worker.cli.output import console
from worker.settings import Settings, SettingsError

CONFIGURATION_ERROR_EXIT = 2


def _practice_ids(
    _: click.Context, __: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    ids = tuple(part.strip() for value in values for part in value.split(",") if part.strip())
    bad = [pid for pid in ids if not pid.isdigit()]
    if bad:
        raise click.BadParameter(f"practice ids are numbers, got {', '.join(bad)}")
    return ids


def _report_path(_: click.Context, __: click.Parameter, value: Path | None) -> Path | None:
    """Refuse an unwritable report path before any request is sent (and any token minted)."""
    if value is not None and not value.parent.is_dir():
        raise click.BadParameter(f"directory {value.parent} does not exist")
    return value


def _settings(as_json: bool) -> Settings:
    """Settings; with --json a malformed one is reported as JSON too (exit 2)."""
    try:
        return load()
    except SettingsError as exc:
        if not as_json:
            raise
        error = {"variable": exc.variable, "problem": exc.problem}
        click.echo(json.dumps({"ok": False, "exit_code": 2, "configuration_error": error}))
        raise SystemExit(CONFIGURATION_ERROR_EXIT) from None


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
    callback=_report_path,
    help="Also write a Markdown summary for a support request (no secrets) to this file.",
)
def doctor(practices: tuple[str, ...], as_json: bool, support_report: Path | None) -> None:
    """Check configuration, token, practices, endpoints, database and Redis; exit 0 only when
    everything the sync needs works (2 when a setting cannot even be read)."""
    from worker.doctor import run_doctor
    from worker.doctor.render import (
        api_table,
        practices_table,
        setup_table,
        summary_line,
        support_markdown,
    )

    report = run_doctor(_settings(as_json), practices=practices)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        console.print(setup_table(report))
        if report.visible_practices:
            console.print(practices_table(report))
        console.print(api_table(report))
        console.print(summary_line(report))
    if support_report is not None:
        try:
            support_report.write_text(support_markdown(report), encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(
                f"could not write {support_report}: {exc.strerror}"
            ) from None
        if not as_json:
            console.print(f"support report written to {escape(str(support_report))}")
    raise SystemExit(report.exit_code)
