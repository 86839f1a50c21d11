"""results.png: records/s, CPU per 100k records and peak RSS per contender, and the scaling
curve against the request budget (matplotlib, from the ``bench`` extra)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from bench.report import Report


def available() -> bool:
    """Whether matplotlib is installed."""
    return importlib.util.find_spec("matplotlib") is not None


def _bars(axis: Any, labels: list[str], series: dict[str, list[float]], title: str) -> None:
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        positions = [x + i * width for x in range(len(labels))]
        bars = axis.bar(positions, values, width, label=name)
        axis.bar_label(
            bars, fmt="{:,.0f}" if max(values, default=0) >= 100 else "{:.2f}", fontsize=7
        )
    axis.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(labels))], labels)
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8)


def _stacked(axis: Any, labels: list[str], series: dict[str, list[float]], title: str) -> None:
    bottom = [0.0] * len(labels)
    for name, values in series.items():
        bars = axis.bar(labels, values, 0.6, bottom=bottom, label=name)
        axis.bar_label(bars, fmt="{:.2f}", label_type="center", fontsize=7)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8)


def _scaling(axis: Any, report: Report) -> None:
    assert report.scale_options is not None
    workers = [p.workers for p in report.scale]
    axis.plot(workers, [p.steady_rps for p in report.scale], marker="o", label="steady req/s")
    axis.axhline(report.scale_options.rps, linestyle="--", color="grey", label="budget")
    axis.set_xscale("log", base=2)
    axis.set_xticks(workers, [str(w) for w in workers])
    axis.set_ylim(bottom=0, top=report.scale_options.rps * 1.3)
    axis.set_xlabel("worker processes")
    axis.set_title(
        f"{report.scale_options.latency_ms} ms latency, shared {report.scale_options.rps:g} req/s "
        f"budget: {sum(p.stats.throttled for p in report.scale)} x 429",
        fontsize=10,
    )
    axis.legend(fontsize=8)


def write_chart(report: Report, path: Path) -> None:
    """Draw the chart to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(m.contender for m in report.side))

    def series(metric: str, run: str) -> list[float]:
        found = {m.contender: m for m in report.side if m.run == run}
        return [float(getattr(found[c], metric)) if c in found else 0.0 for c in labels]

    figure, grid = plt.subplots(2, 3, figsize=(15, 8.4))
    axes = list(grid.flat)
    _bars(
        axes[0],
        labels,
        {r: series("records_per_second", r) for r in ("full", "re-run")},
        "records/s",
    )
    _stacked(
        axes[1],
        labels,
        {"client": series("cpu_per_100k", "full"), "Postgres": series("pg_cpu_per_100k", "full")},
        "CPU seconds per 100k records (full load)",
    )
    _bars(
        axes[2], labels, {r: series("peak_rss_mb", r) for r in ("full", "re-run")}, "peak RSS, MB"
    )
    _bars(
        axes[3],
        labels,
        {"re-run": series("rows_written", "re-run")},
        "rows written by the unchanged re-run",
    )
    if report.scale and report.scale_options is not None:
        _scaling(axes[4], report)
    else:
        axes[4].axis("off")
    if report.memory:
        sizes = [f"{n:,}" for n, _ in report.memory]
        _bars(
            axes[5],
            sizes,
            {"athena-sync": [m.peak_rss_mb for _, m in report.memory]},
            "athena-sync peak RSS (MB) by appointments",
        )
    else:
        axes[5].axis("off")
    figure.suptitle(f"athena-sync benchmark, {report.dataset.get('appointments', '')} appointments")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
