"""One contender run in its own process: ``python -m bench.child '<RunSpec as JSON>'``.

The contender's module is imported and its loader prepared before the clock starts; the timed
part is the load alone. Wall seconds and this process's CPU seconds (all threads, from
``getrusage``) of that part are printed as one ``BENCH_RESULT {json}`` line on stdout; the parent
reads the whole process's CPU from ``wait4``. Peak RSS is the process's own ``VmHWM``.
"""

from __future__ import annotations

import cProfile
import importlib
import json
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "
# Contender name -> "module:function"; the function takes a RunSpec and returns the timed
# callable, which returns how many records it fetched.
LOADERS = {
    "athena-sync": "bench.athena_loader:loader",
    "baseline": "bench.baseline:loader",
    "dlt": "bench.dlt_loader:loader",
}


@dataclass(frozen=True)
class RunSpec:
    """Everything a contender needs for one run."""

    contender: str
    base_url: str
    database_url: str  # libpq form: postgresql://user@host:port/db
    start: date
    end: date
    page_limit: int
    rerun: bool
    work_dir: str
    profile_path: str = ""  # when set, the load runs under cProfile and its stats go here

    def to_json(self) -> str:
        """JSON text for the command line."""
        data = asdict(self)
        data["start"], data["end"] = self.start.isoformat(), self.end.isoformat()
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        """Inverse of :meth:`to_json`."""
        data: dict[str, Any] = json.loads(text)
        data["start"] = date.fromisoformat(data["start"])
        data["end"] = date.fromisoformat(data["end"])
        return cls(**data)


def peak_rss_mb() -> float:
    """This process's peak resident set since it was exec'd (``VmHWM``), in MB.

    Not ``ru_maxrss``: Linux carries the parent's high-water mark across fork and exec into it,
    so a child of a large harness would report the harness's size.
    """
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def resolve(contender: str) -> Callable[[RunSpec], Callable[[], int]]:
    """The loader factory of a contender (imports its module)."""
    module_name, _, function = LOADERS[contender].partition(":")
    factory: Callable[[RunSpec], Callable[[], int]] = getattr(
        importlib.import_module(module_name), function
    )
    return factory


def main(argv: list[str]) -> None:
    """Run one contender and print its result line."""
    spec = RunSpec.from_json(argv[1])
    load = resolve(spec.contender)(spec)
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    if spec.profile_path:
        profiler = cProfile.Profile()
        fetched = profiler.runcall(load)
        profiler.dump_stats(spec.profile_path)
    else:
        fetched = load()
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
    result = {"seconds": seconds, "cpu_seconds": cpu, "fetched": fetched, "rss_mb": peak_rss_mb()}
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv)
